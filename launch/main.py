"""Pretrain H-JEPA.

    python launch/main.py --config=configs/conservative.py --workdir=results/conservative \
        [--config.data.batch_size=16 ...]

Re-running the same command resumes from WORKDIR's newest checkpoint. Ctrl-C (SIGINT) or SIGTERM
finishes the current step, saves and exits 0. A bad flag, config file or value fails in seconds, before
TensorFlow is imported or anything compiles, with one line naming the key. The code is
`hjepa_jax/launcher.py` (`hjepa-train` where the package is installed).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hjepa_jax import launcher  # noqa: E402

if __name__ == "__main__":
  launcher.run()
