"""The training application end to end: launcher, checkpoints, logs, resume after SIGINT, devices."""

import glob
import os
import subprocess
import sys

import jax
import numpy as np

from hjepa_jax import checkpoint, train
from tests._core import tiny_config
from tests._smoke import RESUME_STEPS, SMOKE_CKPT_STEPS, SMOKE_LOG_EVERY, SMOKE_STEPS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAIN = os.path.join(ROOT, "launch", "main.py")
SMOKE = os.path.join(ROOT, "configs", "smoke.py")


ENV = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")


def _launch(workdir, *overrides, config=SMOKE):
  return subprocess.Popen(
    [sys.executable, MAIN, f"--config={config}", f"--workdir={workdir}", *overrides],
    env=ENV,
    stdout=subprocess.PIPE,
    stderr=subprocess.STDOUT,
    text=True,
  )


def _restore(workdir, step=None):
  return checkpoint.restore_for_eval(workdir, step)


def _losses(workdir):
  lines = open(os.path.join(workdir, "logs", "training.log")).read().splitlines()
  return [float(l.split("| loss ")[1].split()[0]) for l in lines if "| loss " in l]


def test_smoke_end_to_end(smoke_run):
  """The shared smoke run (tests/_smoke.py): checkpoints, best/, events, a falling loss, an eval at the end."""
  workdir = smoke_run
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == [str(s) for s in SMOKE_CKPT_STEPS]
  assert glob.glob(os.path.join(workdir, "events.out.tfevents.*"))
  assert os.path.isfile(os.path.join(workdir, "config.json"))
  losses = _losses(workdir)
  assert len(losses) == SMOKE_STEPS // SMOKE_LOG_EVERY and losses[-1] < 0.8 * losses[0], losses
  log = open(os.path.join(workdir, "logs", "training.log")).read()
  assert f"eval at step {SMOKE_STEPS}" in log and "knn_top1_k20" in log
  assert os.listdir(os.path.join(workdir, "best"))  # the best checkpoint by eval/knn_top1_k20
  from tensorboard.backend.event_processing import event_accumulator

  events = event_accumulator.EventAccumulator(workdir, size_guidance={"tensors": 0})
  events.Reload()
  tags = set(events.Tags()["tensors"])
  assert {
    "train/loss",
    "train/loss_level_0",
    "train/loss_level_1",
    "train/feature_variance",
    "train/grad_norm",
    "train/lr",
    "train/ema_momentum",
    "train/images_per_sec",
    "train/epoch_time_min",
    "eval/knn_top1_k20",
    "eval/effective_rank",
    "train/masks",
  } <= tags, tags


def test_sigint_saves_and_resume_matches_uninterrupted_run(sigint_run, resume_reference):
  """SIGINT after step 10 saves a checkpoint and exits 0; the same command resumes from it and ends where the
  uninterrupted run ends (tests/_sigint_job.py, run in the background)."""
  facts, run = sigint_run
  code, out = facts["first"]
  assert code == 0, out
  stopped_at = max(facts["checkpoints_after_stop"], default=0)
  assert 10 <= stopped_at < RESUME_STEPS, out
  log = open(os.path.join(run, "logs", "training.log")).read()
  assert "SIGINT received" in log
  code, out = facts["second"]
  assert code == 0, out
  assert f"at step {stopped_at}" in log  # "resumed from ... at step N"
  step_a, a = _restore(resume_reference)  # the same command, never interrupted (run in the background)
  step_b, b = _restore(run)
  assert step_a == step_b == RESUME_STEPS
  jax.tree_util.tree_map(lambda x, y: np.testing.assert_allclose(x, y, rtol=0, atol=1e-6), a, b)


def test_four_devices_match_one(device_runs):
  """The same two steps (tests/_smoke.DEVICE_FLAGS) on 1 and on 4 forced CPU devices give the same state."""
  states = []
  for devices, workdir in device_runs.items():
    assert f"x {devices} devices" in open(os.path.join(workdir, "logs", "training.log")).read()
    states.append(_restore(workdir)[1])
  jax.tree_util.tree_map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6), *states)


def test_bad_config_fails_at_start_naming_the_key(tmp_path):
  procs = {
    key: _launch(str(tmp_path / key), f"--config.{key}=" + value)  # both at once (2 cores)
    for key, value in (("optim.lr", "-1.0"), ("model.layerscal", "True"))
  }
  for key, proc in procs.items():
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode != 0 and key.split(".")[-1] in out, out[-3000:]


def _tags(workdir):
  from tensorboard.backend.event_processing import event_accumulator

  events = event_accumulator.EventAccumulator(workdir, size_guidance={"tensors": 0})
  events.Reload()
  return set(events.Tags()["tensors"])


def test_mask_images_only_when_asked(tmp_path, smoke_run):
  assert "train/masks" in _tags(smoke_run)  # log_mask_images=True (the default): the shared smoke run
  workdir = str(tmp_path / "off")
  train.train_and_evaluate(tiny_config(**{"log_mask_images": False, "total_steps": 2}), workdir)
  assert "train/masks" not in _tags(workdir)
