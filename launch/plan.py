"""Plan a run before starting it: predicted time and memory on this machine, and what fits a budget.

    python launch/plan.py --config=configs/conservative.py --hours=8 [--config.data.batch_size=16 ...]
    python launch/plan.py --config=configs/conservative.py --hours=8 --chip="M1 Max"   # also that chip, from FLOPs

Builds the run as launch/main.py would (same validation), compiles its update once, times `--steps` steps on
synthetic input and `--input_batches` batches of the configured input pipeline (where its data is present),
and prints images per epoch, steps, step time and images/s, predicted time per epoch and in all, XLA's
buffers against the device's memory, MFU where the chip's peak is known, and, over `--hours` (default: the
config's time_budget_hours), how much over and what would fit. See hjepa_jax/plan.py.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from hjepa_jax import platform  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (configs/*.py[:arg]).", lock_config=True)
_HOURS = flags.DEFINE_float("hours", None, "Time budget in hours (default: the config's time_budget_hours).")
_STEPS = flags.DEFINE_integer("steps", 3, "Timed steps after the compile and one warm-up step.")
_INPUT = flags.DEFINE_integer("input_batches", 4, "Input batches timed after the first (0: skip the input pipeline).")
_CHIP = flags.DEFINE_string("chip", None, "Also predict on this chip of hjepa_jax/devices.py (e.g. 'M1 Max').")
_UTIL = flags.DEFINE_float(
  "utilisation", None, "Fraction of --chip's peak assumed (default: plan.PLANNING_UTILISATION)."
)
flags.mark_flags_as_required(["config"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  platform.hide_gpus_from_tensorflow()
  from hjepa_jax import plan  # noqa: E402  (after TF is kept off the GPU)
  from hjepa_jax.config import ConfigError
  from hjepa_jax.data import DataError

  try:
    p = plan.make_plan(_CONFIG.value, hours=_HOURS.value, steps=_STEPS.value, input_batches=_INPUT.value)
  except (ConfigError, DataError) as e:
    sys.exit(f"error: {e}")
  util = plan.PLANNING_UTILISATION if _UTIL.value is None else _UTIL.value
  print("\n".join(plan.report(p, chip=_CHIP.value, utilisation=util)))


if __name__ == "__main__":
  platform.tune_host()  # XLA:CPU flags and huge-page malloc (restarts once) where they help
  app.run(main)
