"""Pretrain H-JEPA: the command behind `python launch/main.py` (a checkout), and `hjepa-train` /
`python -m hjepa_jax.launcher` (an installed package, where launch/ is not installed).

    hjepa-train --config=configs/conservative.py --workdir=results/conservative \
        [--config.data.batch_size=16 ...]

Re-running the same command resumes from WORKDIR's newest checkpoint. Ctrl-C (SIGINT) or SIGTERM
finishes the current step, saves and exits 0. A bad flag, config file or value fails in seconds, before
TensorFlow is imported or anything compiles, with one line naming the key.

Several hosts: the same command on each, plus `--coordinator_address=HOST:PORT --num_processes=N
--process_id=I` (or JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID); see `hjepa_jax.distributed`.
"""

from absl import app, flags

from hjepa_jax import cli, distributed, platform

_CONFIG = cli.define_config()
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory: checkpoints, TensorBoard events, logs/training.log.")
flags.mark_flags_as_required(["config", "workdir"])
distributed.define_flags()


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  with cli.user_errors():
    distributed.initialize()  # before check_start asks jax for its devices: they span every process
  cli.check_start(_CONFIG.value, _WORKDIR.value)
  platform.hide_gpus_from_tensorflow()
  from hjepa_jax import train  # noqa: E402  (after TF is kept off the GPU)

  with cli.user_errors(log=True):  # divergence, checkpoints, disk, a locked workdir; a bug keeps its traceback
    train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)


def run():
  """Entry point: XLA:CPU flags and huge-page malloc (restarts once) where they help, then absl."""
  platform.tune_host()
  cli.run(main)


if __name__ == "__main__":
  run()
