"""Pretrain H-JEPA.

    python launch/main.py --config=configs/conservative.py --workdir=results/conservative \
        [--config.data.batch_size=16 ...]

Re-running the same command resumes from WORKDIR's newest checkpoint. Ctrl-C (SIGINT) or SIGTERM
finishes the current step, saves and exits 0.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from hjepa_jax import platform  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (configs/*.py[:arg]).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory: checkpoints, TensorBoard events, logs/training.log.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  platform.hide_gpus_from_tensorflow()
  from hjepa_jax import train  # noqa: E402  (after TF is kept off the GPU)
  from hjepa_jax.config import ConfigError
  from hjepa_jax.data import DataError
  from hjepa_jax.errors import RunError

  # Known user-facing failures print one message; anything else is a bug and keeps its traceback.
  try:
    train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except (ConfigError, DataError, RunError) as e:  # divergence, checkpoints, disk, a locked workdir
    logging.error("%s", e)
    sys.exit(f"error: {e}")


if __name__ == "__main__":
  platform.tune_host()  # XLA:CPU flags and huge-page malloc (restarts once) where they help
  app.run(main)
