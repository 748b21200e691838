"""Orbax checkpoints: the newest k in `checkpoints/`, the best by an eval metric in `best/`.

Orbax writes each step to a temporary directory and renames it when complete, so a kill or a
full disk during a save never damages the previous checkpoints.
"""

import logging
import os

import jax
import orbax.checkpoint as ocp


def _manager(directory, **options):
  return ocp.CheckpointManager(os.path.abspath(directory), options=ocp.CheckpointManagerOptions(create=True, **options))


def _split_step_dir(path):
  """(checkpoint root, step or None) for a run dir, a checkpoints dir or one step's dir."""
  path = os.path.abspath(path)
  if os.path.isdir(os.path.join(path, "checkpoints")):
    return os.path.join(path, "checkpoints"), None
  base = os.path.basename(path.rstrip("/"))
  if base.isdigit():
    return os.path.dirname(path), int(base)
  return path, None


class Checkpointer:
  """Save/restore the train state pytree; `abstract_state` carries shapes, dtypes and shardings.

  Two orbax managers: `checkpoints/` keeps the newest k, `best/` the best by `best_metric`. One
  manager cannot do both across the supported orbax range (0.11.x keeps the best k when best_fn is
  set; newest-k-plus-best preservation policies exist only in newer releases).
  """

  def __init__(self, workdir, keep, best_metric=None, best_mode=None):
    self.latest = _manager(os.path.join(workdir, "checkpoints"), max_to_keep=keep)
    self.best_metric = best_metric
    self.best = None
    if best_metric:
      self.best = _manager(
        os.path.join(workdir, "best"), max_to_keep=1, best_fn=lambda m: m[best_metric], best_mode=best_mode
      )

  def latest_step(self):
    return self.latest.latest_step()

  def restore(self, abstract_state, resume=None):
    """(state, source) from this run's newest checkpoint, else from `resume`, else (None, None)."""
    step = self.latest.latest_step()
    if step is not None:
      return self.latest.restore(step, args=ocp.args.StandardRestore(abstract_state)), f"{self.latest.directory}/{step}"
    if not resume:
      return None, None
    root, step = _split_step_dir(resume)
    if not os.path.isdir(root):
      raise FileNotFoundError(f"--config.resume={resume!r}: no such checkpoint directory")
    other = _manager(root)
    step = other.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"--config.resume={resume!r}: no checkpoint found in {root}")
    return other.restore(step, args=ocp.args.StandardRestore(abstract_state)), f"{root}/{step}"

  def save(self, step, state):
    """Save (async where orbax can); a failure is raised with what to do, older steps stay intact."""
    try:
      self.latest.save(step, args=ocp.args.StandardSave(state), force=True)
    except OSError as e:
      raise OSError(
        f"saving checkpoint {step} failed ({e}). Previous checkpoints in {self.latest.directory} "
        "are intact; free disk space and restart the same command to resume."
      ) from e

  def save_best(self, step, state, metrics):
    """Keep `state` in best/ if metrics[best_metric] beats the kept one."""
    if self.best is None or self.best_metric not in metrics:
      return False
    self.best.save(
      step, args=ocp.args.StandardSave(state), metrics={self.best_metric: float(metrics[self.best_metric])}, force=True
    )
    return self.best.best_step() == step

  def wait(self):
    for m in (self.latest, self.best):
      if m is not None:
        m.wait_until_finished()

  def close(self):
    self.wait()
    for m in (self.latest, self.best):
      if m is not None:
        m.close()
    logging.info("checkpoints flushed")


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
  meta = ocp.StandardCheckpointer().metadata(os.path.join(root, str(step), "default"))
  meta = getattr(meta, "item_metadata", meta)  # newer orbax wraps the tree
  meta = getattr(meta, "tree", meta)
  target = jax.tree_util.tree_map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), meta)
  try:
    return step, manager.restore(step, args=ocp.args.StandardRestore(target))
  finally:
    manager.close()


def abstract_like(tree, sharding=None):
  """ShapeDtypeStructs (with sharding) describing `tree`, for StandardRestore."""
  return jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)
