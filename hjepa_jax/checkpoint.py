"""Orbax checkpoints: the newest k in `checkpoints/`, the best by an eval metric in `best/`.

Nothing a failure does may cost the last good checkpoint:
- Orbax writes each step to a temporary directory and renames it when complete, so a kill or a full
  disk during a save leaves the previous checkpoints as they were.
- Saves are synchronous: a failed save (full disk, lost mount) stops the run at that save, with the
  last complete step named, instead of surfacing from a background thread one interval later.
- Restore walks back from the newest checkpoint: one that does not restore (truncated file, missing
  metadata, empty directory, or a directory name that disagrees with the step inside) is moved to
  `checkpoints.damaged/` with a warning and the next older one is tried. A checkpoint of a different
  model or optimizer is not damage: that fails at once, naming what differs, and moves nothing.
- A run that fell back past a damaged checkpoint computes its steps again; when it reaches a step best/
  already holds, that entry is replaced by the run's own state (set aside in `best.replacing/` until the
  new one is complete, put back if the write fails or the run is killed first), so best/ keeps one entry.
"""

import contextlib
import errno
import itertools
import logging
import os
import re
import shutil
import sys
import tempfile
import time

import jax
import numpy as np
import orbax.checkpoint as ocp

from hjepa_jax.errors import RunError

DAMAGED = "checkpoints.damaged"
REPLACING = "best.replacing"  # best/<step> while the same step is saved again; gone once that save is complete


class CheckpointError(RunError):
  """No checkpoint restores, a checkpoint belongs to another config, or a save failed."""


def _manager(directory, **options):
  return ocp.CheckpointManager(
    os.path.abspath(directory),
    options=ocp.CheckpointManagerOptions(create=True, enable_async_checkpointing=False, **options),
  )


def _split_step_dir(path):
  """(checkpoint root, step or None) for a run dir, a checkpoints dir or one step's dir."""
  path = os.path.abspath(path)
  if os.path.isdir(os.path.join(path, "checkpoints")):
    return os.path.join(path, "checkpoints"), None
  base = os.path.basename(path.rstrip("/"))
  if base.isdigit():
    return os.path.dirname(path), int(base)
  return path, None


def _metadata_tree(step_dir):
  """The saved pytree's shapes and dtypes (orbax warns that a step-level file is not in the item dir: muted)."""
  absl_logger = logging.getLogger("absl")
  level = absl_logger.level
  absl_logger.setLevel(logging.ERROR)
  try:
    meta = ocp.StandardCheckpointer().metadata(os.path.join(step_dir, "default"))
  finally:
    absl_logger.setLevel(level)
  meta = getattr(meta, "item_metadata", meta)  # newer orbax wraps the tree
  return getattr(meta, "tree", meta)


def _shapes(tree):
  return sorted(tuple(x.shape) for x in jax.tree_util.tree_leaves(tree))


_OS_ERROR_CODE = re.compile(r"os_error_code='?(\d+)")


def _io_errno(e):
  """The errno behind a failed write, or None. Orbax wraps OSErrors; tensorstore raises ValueError("...
  RESOURCE_EXHAUSTED ... No space left on device [os_error_code='28']"), so the chain's messages are read too."""
  seen = set()
  while e is not None and id(e) not in seen:
    if isinstance(e, OSError) and e.errno:
      return e.errno
    code = _OS_ERROR_CODE.search(str(e))
    if code:
      return int(code.group(1))
    seen.add(id(e))
    e = e.__cause__ or e.__context__
  return None


def _restore_checked(manager, step, abstract_state):
  """The state saved at `step`; ValueError when it is not the config's state (not damage), else any error."""
  step_dir = os.path.join(str(manager.directory), str(step))
  try:
    meta = _metadata_tree(step_dir)
  except Exception as e:  # noqa: BLE001  unreadable metadata is damage; the caller names it
    raise _Damaged(f"unreadable metadata ({type(e).__name__}: {str(e)[:200]})") from e
  saved, wanted = _shapes(meta), _shapes(abstract_state)
  if not saved:
    raise _Damaged("no array metadata (missing _METADATA or an empty directory)")
  if saved != wanted:
    raise CheckpointError(
      f"{step_dir} holds a different model or optimizer than this config ({len(saved)} arrays saved, "
      f"{len(wanted)} expected; first differing shapes: "
      f"{next(((a, b) for a, b in zip(saved, wanted) if a != b), (saved[-1:], wanted[-1:]))}). "
      "Run with the config that made it, or give this config another --workdir "
      "(--config.resume=DIR starts from another run's checkpoint of the same model)."
    )
  try:
    state = manager.restore(step, args=ocp.args.StandardRestore(abstract_state))
  except Exception as e:  # noqa: BLE001
    raise _Damaged(f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}") from e
  inside = int(np.asarray(jax.device_get(state["step"])))
  if inside != step:
    raise _Damaged(f"directory {step} holds the state of step {inside}")
  return state


class _Damaged(Exception):
  """A checkpoint that does not restore; the message says how."""


class Checkpointer:
  """Save/restore the train state pytree; `abstract_state` carries shapes, dtypes and shardings.

  Two orbax managers: `checkpoints/` keeps the newest k, `best/` the best by `best_metric`. One
  manager cannot do both across the supported orbax range (0.11.x keeps the best k when best_fn is
  set; newest-k-plus-best preservation policies exist only in newer releases).
  """

  def __init__(self, workdir, keep, best_metric=None, best_mode=None):
    self.workdir = os.path.abspath(workdir)
    self.latest = _manager(os.path.join(workdir, "checkpoints"), max_to_keep=keep)
    self.best_metric = best_metric
    self.best = None
    if best_metric:
      self.best = _manager(
        os.path.join(workdir, "best"), max_to_keep=1, best_fn=lambda m: m[best_metric], best_mode=best_mode
      )

  def latest_step(self):
    return self.latest.latest_step()

  # -- restore -----------------------------------------------------------------------------------

  def restore(self, abstract_state, resume=None):
    """(state, source) from this run's newest checkpoint that restores, else from `resume`, else (None, None)."""
    self._recover_best()
    steps = sorted(self.latest.all_steps(), reverse=True)
    failures = []
    for step in steps:
      try:
        state = _restore_checked(self.latest, step, abstract_state)
      except _Damaged as e:
        failures.append((step, str(e)))
        continue
      for bad, why in failures:  # only once a good one is found: with none, the workdir stays as it was
        self._move_aside(bad, why)
      if failures:
        self.latest.reload()
      return state, f"{self.latest.directory}/{step}"
    if failures:
      listing = "; ".join(f"{s}: {why}" for s, why in failures)
      raise CheckpointError(
        f"no checkpoint in {self.latest.directory} restores ({listing}). Nothing was moved or deleted. "
        "To start afresh keep them aside (mv them out of checkpoints/) or use another --workdir."
      )
    if not resume:
      return None, None
    root, step = _split_step_dir(resume)
    if not os.path.isdir(root):
      raise CheckpointError(f"--config.resume={resume!r}: no such checkpoint directory")
    other = _manager(root)
    try:
      step = other.latest_step() if step is None else step
      if step is None:
        raise CheckpointError(f"--config.resume={resume!r}: no checkpoint found in {root}")
      try:
        return _restore_checked(other, step, abstract_state), f"{root}/{step}"
      except _Damaged as e:
        raise CheckpointError(f"--config.resume={resume!r}: checkpoint {root}/{step} does not restore: {e}") from None
    finally:
      other.close()

  def _move_aside(self, step, why):
    if jax.process_index() > 0:  # one process moves; the others restore the same older step
      logging.warning("checkpoint %d does not restore (%s); process 0 moves it aside", step, why)
      return
    dest_root = os.path.join(self.workdir, DAMAGED)
    os.makedirs(dest_root, exist_ok=True)
    dest = os.path.join(dest_root, f"{step}-{time.strftime('%Y%m%d-%H%M%S')}")
    shutil.move(os.path.join(str(self.latest.directory), str(step)), dest)
    logging.warning("checkpoint %d does not restore (%s): moved to %s; trying the previous one", step, why, dest)

  # -- save --------------------------------------------------------------------------------------

  def save(self, step, state):
    """Saves `state` as `step` (the state's own step); a failed write raises CheckpointError at once."""
    if step in self.latest.all_steps():  # e.g. stopped right after a resume: the same state is on disk
      return
    t0 = time.time()
    self._write(self.latest, step, lambda: self.latest.save(step, args=ocp.args.StandardSave(state), force=True))
    logging.info("saved checkpoint %d to %s/%d (%.1f s)", step, self.latest.directory, step, time.time() - t0)

  def save_best(self, step, state, metrics):
    """Keep `state` in best/ if metrics[best_metric] beats the kept one.

    best/ may hold `step` already: the run resumed from an older checkpoint (the newer ones were damaged)
    and has computed that step again. Then that entry is replaced by this run's state (`_replacing`).
    """
    if self.best is None or self.best_metric not in metrics:
      return False
    value = float(metrics[self.best_metric])
    with self._replacing(step):
      self._write(
        self.best,
        step,
        lambda: self.best.save(step, args=ocp.args.StandardSave(state), metrics={self.best_metric: value}, force=True),
      )
    kept = self.best.best_step() == step
    if kept:
      logging.info("best %s so far (%.4f): kept step %d in %s", self.best_metric, value, step, self.best.directory)
    return kept

  @contextlib.contextmanager
  def _replacing(self, step):
    """Sets best/<step> aside (WORKDIR/best.replacing/<step>) while `step` is saved again; deletes it once the new
    one is complete, puts it back if the save fails. A kill in between: `_recover_best` at the next start."""
    if step not in self.best.all_steps():
      yield
      return
    kept = os.path.join(str(self.best.directory), str(step))
    aside = os.path.join(self.workdir, REPLACING, str(step))
    if jax.process_index() == 0:
      shutil.rmtree(aside, ignore_errors=True)
      os.makedirs(os.path.dirname(aside), exist_ok=True)
      shutil.move(kept, aside)
    _barrier("best_aside")  # every process lists best/ without it before the save
    self.best.reload()
    try:
      yield
    except BaseException:
      if jax.process_index() == 0 and not os.path.exists(kept):
        shutil.move(aside, kept)
        shutil.rmtree(os.path.dirname(aside), ignore_errors=True)
      raise
    if jax.process_index() == 0:
      shutil.rmtree(os.path.dirname(aside), ignore_errors=True)
    logging.info("best/ held step %d from before the resume: replaced by this run's step %d", step, step)

  def _recover_best(self):
    """After a kill inside `_replacing`: the set-aside entry goes back when best/ holds none, else (the new
    one was complete) it is deleted."""
    if self.best is None:
      return
    root = os.path.join(self.workdir, REPLACING)
    if jax.process_index() == 0 and os.path.isdir(root):
      for name in os.listdir(root):
        if name.isdigit() and not self.best.all_steps():
          shutil.move(os.path.join(root, name), os.path.join(str(self.best.directory), name))
          logging.warning("best/ was being replaced when the run ended: put step %s back", name)
      shutil.rmtree(root, ignore_errors=True)
    _barrier("best_recovered")
    self.best.reload()

  def _write(self, manager, step, save):
    with _stderr_captured() as noise:  # a failing orbax save prints hundreds of tracebacks from its threads
      try:
        save()
        error = None
      except Exception as e:  # noqa: BLE001  orbax wraps I/O errors; only those are the user's to fix
        error = e
        _settle(manager)  # its threads go on failing for a moment: let that land in the capture too
    code = None if error is None else _io_errno(error)
    if code is None:
      sys.stderr.write(noise())  # a good save (or a bug, re-raised): whatever was printed, as it was
      if error is not None:
        raise error
      return
    details = self._keep_details(noise())
    if jax.process_index() == 0:
      _remove_partial(str(manager.directory), step)
    last = self.latest.latest_step()
    kept = f"the last complete checkpoint is step {last}" if last is not None else "no checkpoint was completed yet"
    if code in (errno.ENOSPC, errno.EDQUOT):
      what = f"no space left in {manager.directory}"
    else:
      what = f"writing {manager.directory}/{step} failed ({os.strerror(code)})"
    raise CheckpointError(
      f"{what} while saving checkpoint {step}; {kept} and is intact. Free space (or fix the mount) and "
      f"rerun the same command to resume. {details}"
    ) from error

  def _keep_details(self, text):
    """Orbax's tracebacks of a failed save go to a file (if the disk takes it), not over the message."""
    if not text.strip():
      return ""
    path = os.path.join(self.workdir, "logs", "checkpoint_failure.log")
    try:
      with open(path, "a") as f:
        f.write(text)
      return f"(orbax's own {text.count('Traceback')} tracebacks: {path})"
    except OSError:
      return f"(orbax printed {text.count('Traceback')} tracebacks; the full disk did not take them)"

  def close(self):
    for m in (self.latest, self.best):
      if m is not None:
        m.wait_until_finished()
        m.close()


_BARRIERS = itertools.count()


def _barrier(name):
  """All processes meet here (nothing to wait for in a single-process run); each barrier name is used once."""
  ocp.multihost.sync_global_processes(f"hjepa_{name}_{next(_BARRIERS)}")


def _settle(manager, seconds=1.0):
  try:
    manager.wait_until_finished()
  except Exception:  # noqa: BLE001  the same failure again; it is reported once, by the caller
    pass
  time.sleep(seconds)


@contextlib.contextmanager
def _stderr_captured():
  """Points file descriptor 2 (Python, C++ and orbax's threads alike) at an in-memory file for the block.

  Yields a function returning what was written. In memory, not on disk: the disk may be the full one.
  """
  sys.stderr.flush()
  try:
    fd = os.memfd_create("hjepa-save-stderr")
  except (AttributeError, OSError):  # not Linux
    with tempfile.TemporaryFile() as tmp:
      fd = os.dup(tmp.fileno())
  saved = os.dup(2)
  text = []

  def read():
    if not text:
      os.lseek(fd, 0, os.SEEK_SET)
      text.append(os.read(fd, 1 << 24).decode(errors="replace"))
    return text[0]

  os.dup2(fd, 2)
  try:
    yield read
  finally:
    sys.stderr.flush()
    os.dup2(saved, 2)
    os.close(saved)
    read()
    os.close(fd)


def _remove_partial(directory, step):
  """Deletes the temporary directory a failed save left (never a complete step)."""
  for name in os.listdir(directory) if os.path.isdir(directory) else ():
    if name.startswith(f"{step}.") and "tmp" in name:
      shutil.rmtree(os.path.join(directory, name), ignore_errors=True)


def restore_for_eval(workdir, step=None, best=False):
  """(step, state) of a run's checkpoint on this process's first device, whatever topology saved it.

  The restore target is built from the checkpoint's own metadata, so evaluating needs neither the
  run's optimizer nor its mesh. `best=True` reads WORKDIR/best/ instead of WORKDIR/checkpoints/.
  """
  kind = "best" if best else "checkpoints"
  root = os.path.join(os.path.abspath(workdir), kind)
  manager = ocp.CheckpointManager(root) if os.path.isdir(root) else None
  steps = sorted(manager.all_steps()) if manager else []
  if not steps:
    if manager:
      manager.close()
    hint = (
      "best/ is written only when the run has a best_metric and evaluates during training; "
      "drop --best to use the newest checkpoint"
      if best
      else "is it a run directory of launch/main.py, and has the run saved a checkpoint yet?"
    )
    raise FileNotFoundError(f"no checkpoint in {root}: {hint}")
  step = steps[-1] if step is None else int(step)
  if step not in steps:
    manager.close()
    raise FileNotFoundError(f"no checkpoint for step {step} in {root}; available steps: {steps}")
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  meta = _metadata_tree(os.path.join(root, str(step)))
  target = jax.tree_util.tree_map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), meta)
  try:
    return step, manager.restore(step, args=ocp.args.StandardRestore(target))
  finally:
    manager.close()


def abstract_like(tree, sharding=None):
  """ShapeDtypeStructs (with sharding) describing `tree`, for StandardRestore."""
  return jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)
