"""Pretrain H-JEPA: the command behind `python launch/main.py` (a checkout), `hjepa-train` and
`python -m hjepa_jax.cli` (an installed package, where launch/ is not installed).

    hjepa-train --config=configs/conservative.py --workdir=results/conservative \
        [--config.data.batch_size=16 ...]

Re-running the same command resumes from WORKDIR's newest checkpoint. Ctrl-C (SIGINT) or SIGTERM
finishes the current step, saves and exits 0.
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from hjepa_jax import platform

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

  # Known user-facing failures print one message; anything else is a bug and keeps its traceback.
  try:
    train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except (ConfigError, DataError, train.TrainingDiverged) as e:  # PlatformError is a ConfigError
    logging.error("%s", e)
    sys.exit(f"error: {e}")


def run():
  """Entry point: XLA:CPU flags and huge-page malloc (restarts once) where they help, then absl."""
  platform.tune_host()
  app.run(main)


if __name__ == "__main__":
  run()
