"""Fault injection: NaN at a chosen step, damaged checkpoints, a full disk, two runs on one workdir, kills.

Each case ends in a clear message and a workdir that the same command resumes; no checkpoint a failure
touches is ever the last good one. In-process runs of the tiny config (seconds each).
"""

import glob
import json
import os
import shutil
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from hjepa_jax import checkpoint, train, workdir as workdir_lib
from hjepa_jax.train_step import init_state
from tests._core import tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _steps(workdir, kind="checkpoints"):
  root = os.path.join(workdir, kind)
  return sorted(int(d) for d in os.listdir(root) if d.isdigit()) if os.path.isdir(root) else []


def _inside(workdir, step):
  return int(checkpoint.restore_for_eval(workdir, step)[1]["step"])


def _poison(monkeypatch, nan_steps=()):
  """The batches that make steps `nan_steps` (1-based, as checkpoints name them) carry NaN images.

  Every batch is float32 (train_step takes [0, 255] floats too), so poisoned runs and clean ones (no
  `nan_steps`) compile one and the same program: every run in this module shares it.
  """
  real = train.data_lib.make_pretrain_iterator

  def make(*args, start_step, **kwargs):
    def batches():
      for step, batch in enumerate(real(*args, start_step=start_step, **kwargs), start=start_step + 1):
        image = np.asarray(batch["image"], np.float32)
        yield dict(batch, image=np.full_like(image, np.nan) if step in nan_steps else image)

    return batches()

  monkeypatch.setattr(train.data_lib, "make_pretrain_iterator", make)


def _config(**overrides):
  return tiny_config(**{"total_steps": 12, "ckpt_every_steps": 3, "log_every_steps": 4, **overrides})


@pytest.fixture(autouse=True)
def float_batches(monkeypatch):
  _poison(monkeypatch)


def test_nan_stops_at_its_step_and_the_workdir_resumes(tmp_path, monkeypatch):
  """Checkpoint (3) and log (4) intervals that do not divide each other; NaN at step 7, between them."""
  workdir = str(tmp_path / "run")
  with monkeypatch.context() as m:
    _poison(m, {7})
    with pytest.raises(train.TrainingDiverged, match=r"at step 7\b.*last good checkpoint is step 6"):
      train.train_and_evaluate(_config(), workdir)
  assert _steps(workdir) == [3, 6]  # nothing saved after the NaN, though step 8 was a log step
  assert [_inside(workdir, s) for s in (3, 6)] == [3, 6]
  train.train_and_evaluate(_config(), workdir)  # the same command without the fault: resumes at 6
  log = open(os.path.join(workdir, "logs", "training.log")).read()
  assert "checkpoints/6 at step 6" in log
  assert _steps(workdir)[-2:] == [9, 12] and [_inside(workdir, s) for s in (9, 12)] == [9, 12]


def test_skipped_updates_are_bounded_counted_and_keep_names_true(tmp_path, monkeypatch):
  _poison(monkeypatch, {2, 5})
  workdir = str(tmp_path / "skip")
  train.train_and_evaluate(_config(max_skipped_steps=2), workdir)
  summary = json.load(open(os.path.join(workdir, "summary.json")))
  assert summary["skipped_steps"] == [2, 5] and summary["finished"]
  assert _steps(workdir) == [9, 12] and [_inside(workdir, s) for s in (9, 12)] == [9, 12]
  with pytest.raises(train.TrainingDiverged, match=r"2 updates .*max_skipped_steps=1"):
    train.train_and_evaluate(_config(max_skipped_steps=1), str(tmp_path / "bounded"))
  assert _steps(str(tmp_path / "bounded")) == [3]


# ---------------------------------------------------------------------------------------------
# Damaged checkpoints.
# ---------------------------------------------------------------------------------------------


KEEP3 = {"keep_checkpoints": 3}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A finished workdir with checkpoints 6, 9 and 12."""
  workdir = str(tmp_path_factory.mktemp("faults") / "run")
  with pytest.MonkeyPatch.context() as m:
    _poison(m)
    train.train_and_evaluate(_config(**KEEP3), workdir)
  return workdir


def _truncate_data(step_dir):
  files = [f for f in glob.glob(os.path.join(step_dir, "**", "*"), recursive=True) if os.path.isfile(f)]
  biggest = max(files, key=os.path.getsize)
  with open(biggest, "r+b") as f:
    f.truncate(os.path.getsize(biggest) // 3)


def _drop_metadata(step_dir):
  os.remove(os.path.join(step_dir, "default", "_METADATA"))


def _empty(step_dir):
  shutil.rmtree(step_dir)
  os.makedirs(step_dir)


def _abstract(config):
  from hjepa_jax import experiment
  from hjepa_jax.optim import make_optimizer
  from hjepa_jax.platform import Platform

  exp, _ = experiment.prepare(config, Platform("cpu", "cpu", 1, 1))
  spec = exp.step_spec
  tx = make_optimizer(spec.optim, jax.eval_shape(spec.model.init, jax.random.PRNGKey(0)))
  return checkpoint.abstract_like(jax.eval_shape(lambda r: init_state(spec.model, tx, r), jax.random.PRNGKey(0)))


def _copy(trained, tmp_path):
  workdir = str(tmp_path / "run")
  shutil.copytree(trained, workdir)
  return workdir


def _restore(workdir):
  ckpt = checkpoint.Checkpointer(workdir, 3)
  try:
    return ckpt.restore(_abstract(_config()))
  finally:
    ckpt.close()


@pytest.mark.parametrize("damage", [_truncate_data, _drop_metadata, _empty], ids=["truncated", "no-metadata", "empty"])
def test_damaged_newest_checkpoint_falls_back_and_is_kept_aside(trained, tmp_path, damage, caplog):
  workdir = _copy(trained, tmp_path)
  damage(os.path.join(workdir, "checkpoints", "12"))
  state, source = _restore(workdir)
  assert source.endswith("checkpoints/9") and int(state["step"]) == 9
  assert _steps(workdir) == [6, 9]
  (aside,) = os.listdir(os.path.join(workdir, checkpoint.DAMAGED))
  assert aside.startswith("12-")
  assert "checkpoint 12 does not restore" in caplog.text


def test_a_directory_whose_name_lies_about_its_step_is_damage(trained, tmp_path):
  workdir = _copy(trained, tmp_path)
  os.rename(os.path.join(workdir, "checkpoints", "12"), os.path.join(workdir, "checkpoints", "15"))
  state, source = _restore(workdir)
  assert source.endswith("checkpoints/9") and int(state["step"]) == 9


def test_damaged_newest_then_the_same_command_resumes_and_finishes(trained, tmp_path):
  workdir = _copy(trained, tmp_path)
  _truncate_data(os.path.join(workdir, "checkpoints", "12"))
  train.train_and_evaluate(_config(**KEEP3), workdir)
  assert "resumed from" in open(os.path.join(workdir, "logs", "training.log")).read()
  assert _steps(workdir) == [6, 9, 12] and _inside(workdir, 12) == 12


def test_none_restores_one_message_nothing_moved(trained, tmp_path):
  workdir = _copy(trained, tmp_path)
  for step in (6, 9, 12):
    _drop_metadata(os.path.join(workdir, "checkpoints", str(step)))
  with pytest.raises(checkpoint.CheckpointError, match="no checkpoint in .* restores.*Nothing was moved"):
    train.train_and_evaluate(_config(**KEEP3), workdir)
  assert _steps(workdir) == [6, 9, 12] and not os.path.exists(os.path.join(workdir, checkpoint.DAMAGED))


def test_another_models_checkpoint_is_not_damage(trained, tmp_path):
  workdir = _copy(trained, tmp_path)
  with pytest.raises(checkpoint.CheckpointError, match="different model or optimizer"):
    train.train_and_evaluate(_config(**{"model.width": 48}), workdir)
  assert _steps(workdir) == [6, 9, 12]


def _scramble(step_dir):
  """The largest file's bytes replaced by random ones of the same size (a bit-rotten or overwritten file)."""
  files = [f for f in glob.glob(os.path.join(step_dir, "**", "*"), recursive=True) if os.path.isfile(f)]
  biggest = max(files, key=os.path.getsize)
  size = os.path.getsize(biggest)
  with open(biggest, "wb") as f:
    f.write(np.random.default_rng(0).bytes(size))


def _best_config():
  return _config(**KEEP3, best_metric="train/loss", best_mode="min")


def _full_disk(self, step, *args, **kwargs):
  raise ValueError("RESOURCE_EXHAUSTED: No space left on device [os_error_code='28']")


def test_damaged_newest_that_best_holds_is_computed_again_and_replaces_it(tmp_path, monkeypatch):
  """best/ holds the damaged step 12: the rerun falls back to 9, computes 12 again and replaces best/12 with it
  (it used to stop there with orbax's StepAlreadyExistsError). One best, nothing lost; a failed replacement puts
  the old entry back, and so does the next start after a kill inside one."""
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(_best_config(), workdir)
  assert _steps(workdir) == [6, 9, 12] and _steps(workdir, "best") == [12]
  _scramble(os.path.join(workdir, "checkpoints", "12"))
  train.train_and_evaluate(_best_config(), workdir)
  log = open(os.path.join(workdir, "logs", "training.log")).read()
  assert "checkpoint 12 does not restore" in log and "checkpoints/9 at step 9" in log
  assert _steps(workdir) == [6, 9, 12] and _steps(workdir, "best") == [12]
  assert json.load(open(os.path.join(workdir, "summary.json")))["finished"]
  (aside,) = os.listdir(os.path.join(workdir, checkpoint.DAMAGED))  # the damaged one, kept aside
  assert aside.startswith("12-") and not os.path.exists(os.path.join(workdir, checkpoint.REPLACING))
  _, best = checkpoint.restore_for_eval(workdir, best=True)
  _, newest = checkpoint.restore_for_eval(workdir, 12)
  jax.tree_util.tree_map(np.testing.assert_array_equal, best, newest)  # best/12 is this run's step 12

  ckpt = checkpoint.Checkpointer(workdir, 3, "train/loss", "min")
  try:
    with monkeypatch.context() as m:  # the replacing save fails: the old best/12 goes back
      m.setattr(ocp.CheckpointManager, "save", _full_disk)
      with pytest.raises(checkpoint.CheckpointError, match="no space left"):
        ckpt.save_best(12, newest, {"train/loss": 0.0})
    assert _steps(workdir, "best") == [12] and not os.path.exists(os.path.join(workdir, checkpoint.REPLACING))
  finally:
    ckpt.close()
  # A kill after best/12 was set aside and before its replacement completed: the next start puts it back.
  os.makedirs(os.path.join(workdir, checkpoint.REPLACING))
  os.rename(os.path.join(workdir, "best", "12"), os.path.join(workdir, checkpoint.REPLACING, "12"))
  ckpt = checkpoint.Checkpointer(workdir, 3, "train/loss", "min")
  try:
    ckpt.restore(_abstract(_config()))
    assert ckpt.best.all_steps() == [12]
  finally:
    ckpt.close()
  assert _steps(workdir, "best") == [12] and not os.path.exists(os.path.join(workdir, checkpoint.REPLACING))


# ---------------------------------------------------------------------------------------------
# A full disk.
# ---------------------------------------------------------------------------------------------


def test_full_disk_stops_at_that_save_and_keeps_older_checkpoints(tmp_path, monkeypatch):
  workdir = str(tmp_path / "run")
  real_save = ocp.CheckpointManager.save

  def save(self, step, *args, **kwargs):
    if step < 6:
      return real_save(self, step, *args, **kwargs)
    os.makedirs(os.path.join(str(self.directory), f"{step}.orbax-checkpoint-tmp"))  # a partial write
    raise ValueError(  # what tensorstore raised on a full tmpfs (BENCHMARKS.md "Reliability")
      'RESOURCE_EXHAUSTED: Error writing "opt.1.inner_state.0.mu.encoder.patch_embed.bias/0" in OCDBT database: '
      "Failed to write 81568 bytes to file 20: No space left on device [os_error_code='28']"
    )

  with monkeypatch.context() as m:
    m.setattr(ocp.CheckpointManager, "save", save)
    with pytest.raises(checkpoint.CheckpointError, match=r"no space left in .*checkpoint 6; the last complete"):
      train.train_and_evaluate(_config(), workdir)
  assert os.listdir(os.path.join(workdir, "checkpoints")) == ["3"]  # partial 6 removed, 3 intact
  train.train_and_evaluate(_config(), workdir)
  assert _steps(workdir)[-2:] == [9, 12]


# ---------------------------------------------------------------------------------------------
# One run per workdir; a finished run stays finished.
# ---------------------------------------------------------------------------------------------

_HOLD = "import sys, time; from hjepa_jax import workdir; cm = workdir.exclusive(sys.argv[1]); cm.__enter__(); print('held', flush=True); time.sleep(120)"


def test_live_run_refused_stale_lock_taken_over(tmp_path, caplog):
  workdir = str(tmp_path / "run")
  os.makedirs(workdir)
  holder = subprocess.Popen(
    [sys.executable, "-c", _HOLD, workdir],
    cwd=ROOT,
    env=dict(os.environ, PYTHONPATH=ROOT),
    stdout=subprocess.PIPE,
    text=True,
  )
  try:
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(workdir_lib.WorkdirLocked, match=rf"in use by another run: pid {holder.pid} on host"):
      train.train_and_evaluate(tiny_config(total_steps=2), workdir)
    assert not os.path.exists(os.path.join(workdir, "checkpoints"))  # refused before touching anything
    with pytest.raises(workdir_lib.WorkdirLocked, match=str(holder.pid)):
      workdir_lib.check_free(workdir)  # the launcher's early look, before the data is counted
  finally:
    holder.kill()  # SIGKILL: no clean release, the lock file still names it
    holder.wait()
  assert str(holder.pid) in open(os.path.join(workdir, workdir_lib.LOCK_NAME)).read()
  with workdir_lib.exclusive(workdir):
    pass
  assert "did not exit cleanly" in caplog.text


def test_finished_run_rerun_changes_nothing_and_says_so(trained, tmp_path):
  workdir = _copy(trained, tmp_path)
  log_path = os.path.join(workdir, "logs", "training.log")
  log = open(log_path).read()
  for line in ("workdir ", "compiling train_step", "train_step compiled and ran step 1 in", "saved checkpoint 12"):
    assert line in log
  first = json.load(open(os.path.join(workdir, "summary.json")))["metrics"]
  files = {p: os.path.getmtime(p) for p in glob.glob(os.path.join(workdir, "**", "*"), recursive=True)}
  assert train.train_and_evaluate(_config(**KEEP3), workdir) == first
  assert "this run is finished" in open(log_path).read()
  changed = {
    p for p in glob.glob(os.path.join(workdir, "**", "*"), recursive=True) if files.get(p) != os.path.getmtime(p)
  }
  assert changed <= {log_path, os.path.join(workdir, workdir_lib.LOCK_NAME)}, changed


# ---------------------------------------------------------------------------------------------
# SIGKILL at random moments, saves included: the same command always resumes and finishes.
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_finishes(tmp_path):
  from tests._smoke import QUIET, TINY_MODEL

  total = 40
  flags = [
    f"--config={os.path.join(ROOT, 'configs', 'smoke.py')}",
    f"--config.total_steps={total}",
    "--config.ckpt_every_steps=1",  # a save every step: kills land inside saves too
    "--config.keep_checkpoints=2",
    *TINY_MODEL,
    *QUIET,
  ]
  rng = np.random.default_rng(0)
  for trial in range(5):
    workdir = str(tmp_path / f"t{trial}")
    cmd = [sys.executable, os.path.join(ROOT, "launch", "main.py"), f"--workdir={workdir}", *flags]
    log = os.path.join(workdir, "logs", "training.log")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (os.path.exists(log) and "compiled and ran" in open(log).read()) and time.time() < deadline:
      time.sleep(0.05)
    time.sleep(rng.uniform(0.0, 1.0))
    proc.kill()
    proc.wait()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _steps(workdir)[-1] == total and _inside(workdir, total) == total


def test_time_budget_warns_once_in_minutes_not_hours(tmp_path, caplog):
  """A night that cannot fit is known at the second log step (issue 15): one warning, the run goes on."""
  train.train_and_evaluate(_config(time_budget_hours=1e-6), str(tmp_path / "run"))
  warnings = [r.getMessage() for r in caplog.records if r.getMessage().startswith("time budget:")]
  assert len(warnings) == 1 and "over time_budget_hours=1e-06" in warnings[0], warnings
  assert "predicted end of this run" in caplog.text
