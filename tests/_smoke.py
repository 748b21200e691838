"""The shared smoke run's settings (the `smoke_run` fixture in conftest.py starts it) and its helpers."""
import os
import shutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE_STEPS = 30
SMOKE_CKPT_STEPS = (15, 30)
SMOKE_LOG_EVERY = 5
SMOKE_FLAGS = [
    f"--config={os.path.join(ROOT, 'configs', 'smoke.py')}", f"--config.total_steps={SMOKE_STEPS}",
    f"--config.log_every_steps={SMOKE_LOG_EVERY}", f"--config.ckpt_every_steps={SMOKE_CKPT_STEPS[0]}",
    f"--config.eval.every_steps={SMOKE_STEPS}", "--config.eval.max_examples=200", "--config.model.depth=2",
    "--config.model.predictor.depth=1", "--config.data.batch_size=32"]


def copy_run(workdir, dest):
  """A private copy of a run directory, for tests that write into it (evaluations, figures)."""
  shutil.copytree(workdir, dest)
  return str(dest)
