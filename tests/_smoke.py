"""The shared smoke run's settings (the `smoke_run` fixture in conftest.py starts it) and its helpers."""

import os
import shutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE_STEPS = 30
SMOKE_CKPT_STEPS = (15, 30)
SMOKE_LOG_EVERY = 5
SMOKE_FLAGS = [
  f"--config={os.path.join(ROOT, 'configs', 'smoke.py')}",
  f"--config.total_steps={SMOKE_STEPS}",
  f"--config.log_every_steps={SMOKE_LOG_EVERY}",
  f"--config.ckpt_every_steps={SMOKE_CKPT_STEPS[0]}",
  f"--config.eval.every_steps={SMOKE_STEPS}",
  "--config.eval.max_examples=200",
  "--config.model.depth=2",
  "--config.model.predictor.depth=1",
  "--config.data.batch_size=32",
]


FAST_COMPILE_FLAG = "--xla_backend_optimization_level=0"  # set for the test session by conftest.py


def full_speed_env(env):
  """`env` without the test session's fast-compile flag, for launched runs whose speed matters."""
  flags = env.get("XLA_FLAGS", "").replace(FAST_COMPILE_FLAG, "").strip()
  return dict(env, XLA_FLAGS=flags)


def with_xla_flag(env, flag):
  """`env` with one more XLA flag (keeping the session's)."""
  return dict(env, XLA_FLAGS=" ".join(filter(None, [env.get("XLA_FLAGS", ""), flag])))


def copy_run(workdir, dest):
  """A private copy of a run directory, for tests that write into it (evaluations, figures)."""
  shutil.copytree(workdir, dest)
  return str(dest)
