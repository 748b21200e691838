"""Pretrain H-JEPA.

    python launch/main.py --config=configs/conservative.py --workdir=results/conservative \
        [--config.data.batch_size=16 ...]

Re-running the same command resumes from WORKDIR's newest checkpoint. Ctrl-C (SIGINT) or SIGTERM
finishes the current step, saves and exits 0. The code is `hjepa_jax/cli.py` (also `hjepa-train` where
the package is installed).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hjepa_jax import cli  # noqa: E402

if __name__ == "__main__":
  cli.run()
