"""H-JEPA pretraining loop: `train_and_evaluate(config, workdir)`, importable from a notebook.

`train_and_evaluate` reads top to bottom, one named step per phase: set-up (config -> experiment with
every key read, the workdir lock, the log, mesh, model, optimizer), restore, start (writer, input
pipeline, jitted update, evaluator), the loop with its periodic actions (log, eval, save; mask and
attention images, histograms, a profile; stop on a signal or a non-finite loss), tear-down
(summary.json, report.md). The functions below follow that order.
"""

import collections
import contextlib
import dataclasses
import functools
import json
import logging
import os
import time
from typing import Any, Callable

import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from hjepa_jax import checkpoint as ckpt_lib
from hjepa_jax import data as data_lib
from hjepa_jax import jsonfile
from hjepa_jax import experiment as experiment_lib
from hjepa_jax import masks as masks_lib
from hjepa_jax import periodic
from hjepa_jax import plan as plan_lib
from hjepa_jax import platform as platform_lib
from hjepa_jax import report as report_lib
from hjepa_jax import workdir as workdir_lib
from hjepa_jax import writers
from hjepa_jax.errors import RunError
from hjepa_jax.optim import make_optimizer
from hjepa_jax.periodic import StopRequest
from hjepa_jax.tools import maps as maps_lib
from hjepa_jax.tools.overlay import for_display, heat_overlay, mask_overlay
from hjepa_jax.train_step import init_state, leaf_names, make_train_step


class TrainingDiverged(RunError):
  """Loss or gradients became NaN/Inf; the last good checkpoint is untouched."""


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str):
  """Trains (resuming from `workdir` if it holds checkpoints) and returns the last logged metrics."""
  platform = platform_lib.detect()
  exp, reader = experiment_lib.prepare(config, platform)  # every bad value fails here, before anything is written
  os.makedirs(workdir, exist_ok=True)
  with contextlib.ExitStack() as cleanup:
    # Set-up: one live run per workdir, its log, then mesh, model, optimizer and checkpoints.
    if jax.process_index() == 0:
      cleanup.enter_context(workdir_lib.exclusive(workdir))  # a second live run on this workdir stops here
    _setup_logging(workdir, cleanup)
    run = _build(exp, reader, platform, workdir, cleanup)
    # Restore: this run's newest checkpoint that restores, else --config.resume, else (below) a new state.
    state, source = run.checkpointer.restore(run.abstract_state, exp.resume)
    start = 0 if state is None else int(state["step"])
    if start >= exp.total_steps:  # a finished run's command again: change nothing
      return _already_finished(run, source, start)
    state = _initial_state(run, config, state, source, start)  # config.json, the writer; a new state if none
    _start(run, reader, start, cleanup)  # input pipeline, jitted update, evaluator, periodic actions
    # The loop: one update per step, then whichever periodic actions are due (log, eval, save).
    with writers.ensure_flushes(run.writer), StopRequest() as stop:
      step, last = _train(run, state, start, stop)
    # Tear-down: what the run did, in the log, summary.json and report.md.
    return _finish(run, step, last)


# ---------------------------------------------------------------------------------------------
# Logging.
# ---------------------------------------------------------------------------------------------


def _setup_logging(workdir, cleanup):
  os.makedirs(os.path.join(workdir, "logs"), exist_ok=True)
  # One log per run: process 0's (the others log to stderr only; with several hosts they would interleave).
  handler = (
    logging.FileHandler(os.path.join(workdir, "logs", "training.log"))
    if jax.process_index() == 0
    else logging.NullHandler()
  )
  handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
  root = logging.getLogger()
  root.addHandler(handler)
  root.setLevel(logging.INFO)
  # Orbax and clu log every save step at INFO through absl; keep our log readable.
  logging.getLogger("absl").setLevel(logging.WARNING)
  cleanup.callback(handler.close)
  cleanup.callback(root.removeHandler, handler)


def _log_start(workdir, exp, reader, platform):
  spec = exp.step_spec
  logging.info(
    "workdir %s: checkpoints in checkpoints/, log in logs/training.log; watch with: tensorboard --logdir %s",
    os.path.abspath(workdir),
    workdir,
  )
  logging.info(
    "backend %s (%s) x %d devices, %d process(es)",
    platform.backend,
    platform.device_kind,
    platform.num_devices,
    platform.process_count,
  )
  logging.info(
    "%d steps: %d per epoch at %d images per update (%d x %d accumulation); token slots (mask.capacity=%s): "
    "%d context (of at most %d), %d per target block (of at most %d)",
    exp.total_steps,
    exp.steps_per_epoch,
    exp.global_batch,
    exp.micro_batch,
    spec.grad_accum_steps,
    reader.mask.capacity,
    spec.masks.context_capacity,
    spec.masks.context_bound,
    spec.masks.target_capacity,
    spec.masks.target_bound,
  )


def _fmt_duration(seconds):
  seconds = int(max(seconds, 0))
  return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


# ---------------------------------------------------------------------------------------------
# The run's pieces: set-up, restore, start.
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Run:
  """What the loop and its periodic actions share, instead of a dozen loose arguments.

  `_build` makes the first group (all the restore needs); `_start` the rest, once the first step is known.
  """

  exp: experiment_lib.Experiment
  platform: platform_lib.Platform
  workdir: str
  t_start: float
  replicated: NamedSharding  # the state: replicated on every device
  data_sharding: NamedSharding  # batches: split on the mesh's one "data" axis
  init_rng: jax.Array
  step_rng: jax.Array
  tx: Any  # the optax optimizer
  init_fn: Callable  # rng -> a new state, replicated
  abstract_state: Any  # shapes, dtypes and shardings of the state, for the restore
  checkpointer: ckpt_lib.Checkpointer
  histogram_names: dict  # {"params": leaf names, "grads": leaf names}
  mask_fn: Callable  # (rng, step) -> the masks train_step draws at that step, for 4 images
  # Set by `_start`:
  writer: Any = None
  data_iter: Any = None
  on_device: bool = False  # data.pipeline=device: batches are already global arrays on the mesh
  train_step: Callable = None
  evaluator: Any = None  # None: no evaluation during training
  attention_images: Any = None  # the fixed test images of the attention maps
  guard: "NonfiniteGuard" = None
  progress: "Progress" = None
  profile: periodic.Profile | None = None

  @property
  def model(self):
    return self.exp.step_spec.model


def _build(exp, reader, platform, workdir, cleanup):
  """Mesh, model, optimizer and checkpoints: one "data" axis over every device, the state replicated."""
  t_start = time.time()
  _log_start(workdir, exp, reader, platform)
  spec = exp.step_spec
  mesh = Mesh(np.asarray(jax.devices()), ("data",))
  replicated = NamedSharding(mesh, P())
  init_rng, step_rng = experiment_lib.init_rngs(exp.seed)
  params_shape = jax.eval_shape(spec.model.init, init_rng)
  tx = make_optimizer(spec.optim, params_shape)
  init_fn = jax.jit(lambda r: init_state(spec.model, tx, r), out_shardings=replicated)
  checkpointer = ckpt_lib.Checkpointer(workdir, exp.keep_checkpoints, exp.eval.best_metric or None, exp.eval.best_mode)
  cleanup.callback(checkpointer.close)
  leaves = leaf_names(params_shape)  # gradients have the params' structure
  return Run(
    exp=exp,
    platform=platform,
    workdir=workdir,
    t_start=t_start,
    replicated=replicated,
    data_sharding=NamedSharding(mesh, P("data")),
    init_rng=init_rng,
    step_rng=step_rng,
    tx=tx,
    init_fn=init_fn,
    abstract_state=ckpt_lib.abstract_like(jax.eval_shape(init_fn, init_rng), replicated),
    checkpointer=checkpointer,
    histogram_names={"params": leaves, "grads": leaves},
    mask_fn=jax.jit(lambda r, s: masks_lib.sample_masks(jax.random.fold_in(r, s), 4, spec.masks)),
  )


def _already_finished(run, source, start):
  logging.info(
    "this run is finished: %s is at step %d of total_steps=%d; nothing to do (raise total_steps to train longer)",
    source,
    start,
    run.exp.total_steps,
  )
  return _read_summary(run.workdir).get("metrics", {})


def _read_summary(workdir):
  try:
    with open(os.path.join(workdir, "summary.json")) as f:
      return json.load(f)
  except (OSError, ValueError):
    return {}


def _initial_state(run, config, state, source, start):
  """Writes config.json and opens the writer; the restored state, or a new one (and the hparams)."""
  if jax.process_index() == 0:
    with open(os.path.join(run.workdir, "config.json"), "w") as f:
      f.write(config.to_json_best_effort(indent=2))
  run.writer = writers.create_default_writer(run.workdir, just_logging=jax.process_index() > 0)
  if state is None:
    state = run.init_fn(run.init_rng)
    logging.info(
      "initialised a new run: %s params", f"{sum(x.size for x in jax.tree_util.tree_leaves(state['params'])):,}"
    )
    run.writer.write_hparams(config.to_dict())  # clu flattens nested keys (and tuples) itself
  else:
    logging.info("resumed from %s at step %d", source, start)
  return state


def _start(run, reader, start, cleanup):
  """What the loop runs from step `start`: input pipeline, jitted update, evaluator and the periodic actions."""
  exp = run.exp
  run.on_device, run.data_iter = _input_pipeline(run, reader, start, cleanup)
  run.train_step = jax.jit(  # one compile for the whole run
    make_train_step(exp.step_spec, run.tx, histogram_every=exp.histogram_every),
    in_shardings=(run.replicated, run.data_sharding, run.replicated),
    out_shardings=(run.replicated, run.replicated),
    donate_argnums=(0,) if run.platform.donate else (),
  )
  if exp.eval.every:
    from hjepa_jax.evaluation.online import OnlineEvaluator  # pylint: disable=g-import-not-at-top

    run.evaluator = OnlineEvaluator(run.model, reader.data, exp.eval)
    # The same first images of the evaluation test split at every evaluation, for the attention maps.
    run.attention_images = run.evaluator.splits["test"][0][: exp.eval.attention_images]
  run.guard = NonfiniteGuard(exp.max_skipped_steps, functools.partial(_last_good, run))
  run.progress = Progress(exp, run.writer, start, run.t_start)
  run.profile = periodic.Profile.create(run.workdir, exp.profile_steps, start, cleanup)


def _input_pipeline(run, reader, start, cleanup):
  """(on_device, iterator) started where the restored state left off: tf.data on the host, or
  (data.pipeline=device) batches made on the devices, already global arrays on the mesh."""
  exp = run.exp
  on_device = reader.data.pipeline == "device"
  where = dict(
    seed=exp.seed, start_step=start, batch_size=exp.global_batch, num_views=2 if exp.step_spec.views.enabled else 1
  )
  if on_device:
    data_iter = data_lib.make_device_iterator(reader.data, mesh=run.data_sharding.mesh, **where)
  else:
    data_iter = data_lib.make_pretrain_iterator(
      reader.data, process_index=jax.process_index(), process_count=jax.process_count(), **where
    )
  if hasattr(data_iter, "close"):
    cleanup.callback(data_iter.close)
  return on_device, data_iter


def _last_good(run):
  """A sentence naming the newest complete checkpoint, for the NaN guard's message."""
  done = run.checkpointer.latest_step()
  if done is None:
    return "No checkpoint was saved yet: rerunning starts afresh."
  return (
    f"The last good checkpoint is step {done} in {run.workdir}/checkpoints; rerunning the same command resumes there."
  )


# ---------------------------------------------------------------------------------------------
# The loop.
# ---------------------------------------------------------------------------------------------


def _train(run, state, start, stop):
  """From step `start` to total_steps (or a stop request): (the last step, the last logged metrics)."""
  exp, guard = run.exp, run.guard
  step, pending, last = start, [], {}
  while step < exp.total_steps:
    host_batch = next(run.data_iter)
    if exp.log_mask_images and (step == start or (exp.eval.every and (step + 1) % exp.eval.every == 0)):
      _log_masks(run, step, host_batch)
    batch = host_batch if run.on_device else _to_global(host_batch, run.data_sharding, run.platform.process_count)
    if step == start:
      state, metrics = _first_update(run, state, batch, step)
    else:
      state, metrics = run.train_step(state, batch, run.step_rng)
    step += 1
    _write_histograms(run, step, metrics.pop("histograms", None))
    if run.profile is not None:
      run.profile.after(step, metrics)
    pending.append(metrics)
    guard.push(step, metrics["nonfinite"])

    stopping = stop.requested  # read once: a signal landing below is handled after the next step, not half-way
    log_now = step % exp.log_every == 0 or step == exp.total_steps or stopping
    eval_now = run.evaluator is not None and (step % exp.eval.every == 0 or step == exp.total_steps)
    save_now = step % exp.ckpt_every == 0 or step == exp.total_steps or stopping
    if not (log_now or eval_now or save_now):
      continue
    guard.settle()  # nothing is logged, evaluated or saved past an unchecked step
    if log_now:
      last, pending = run.progress(step, pending, len(guard.skipped)), []
    eval_metrics = _evaluate(run, step, state) if eval_now else {}
    last.update(eval_metrics)
    if save_now:
      _save(run, step, state, last, evaluated=bool(eval_metrics))
    if stopping:
      logging.info("stopped by %s at step %d; checkpoint saved. Run the same command to resume.", stopping, step)
      break
  return step, last


def _to_global(batch, sharding, process_count):
  if process_count == 1:
    return jax.device_put(batch, sharding)
  return jax.tree_util.tree_map(lambda x: jax.make_array_from_process_local_data(sharding, x), batch)


def _first_update(run, state, batch, step):
  """The session's first update compiles train_step (static shapes: once per run); timed, then the clocks start."""
  logging.info("compiling train_step (static shapes: the only compile of this run)...")
  t_compile = time.time()
  state, metrics = run.train_step(state, batch, run.step_rng)
  jax.block_until_ready(metrics["loss"])
  logging.info("train_step compiled and ran step %d in %.1f s", step + 1, time.time() - t_compile)
  run.progress.restart(step + 1)  # throughput from here: the compile is not a step's time
  if run.profile is not None:
    run.profile.start()
  return state, metrics


class NonfiniteGuard:
  """Reads each step's non-finite flag one step late (dispatch stays ahead) and applies the skip policy.

  A non-finite update is skipped inside train_step (params, target and optimizer state untouched; the
  step still counts, so directory names and state steps agree). More than `max_skipped` skipped updates
  in one run stop it before anything else is saved.
  """

  def __init__(self, max_skipped, last_good):
    self.max_skipped = max_skipped
    self.last_good = last_good  # () -> a sentence naming the newest complete checkpoint
    self.skipped = []
    self._pending = collections.deque()

  def push(self, step, flag):
    self._pending.append((step, flag))
    self.settle(keep=1)

  def settle(self, keep=0):
    while len(self._pending) > keep:
      step, flag = self._pending.popleft()
      if float(jax.device_get(flag)):
        self._skip(step)

  def _skip(self, step):
    self.skipped.append(step)
    if len(self.skipped) <= self.max_skipped:
      logging.warning(
        "step %d: loss or gradients were NaN/Inf; update skipped (%d of at most max_skipped_steps=%d)",
        step,
        len(self.skipped),
        self.max_skipped,
      )
      return
    what = (
      f"loss or gradients became NaN/Inf at step {step}"
      if self.max_skipped == 0
      else f"{len(self.skipped)} updates had NaN/Inf loss or gradients (steps {self.skipped[:5]}...), more than "
      f"max_skipped_steps={self.max_skipped}"
    )
    raise TrainingDiverged(
      f"{what}; those updates were not applied and nothing after them was saved. {self.last_good()} "
      f"Try a lower learning rate "
      f"(--config.optim.lr), longer warmup (--config.optim.warmup_epochs), tighter clipping "
      f"(--config.optim.clip_norm=1.0), or float32 compute (--config.model.dtype=float32)."
    )


# ---------------------------------------------------------------------------------------------
# Periodic actions: log, eval, save; images and histograms.
# ---------------------------------------------------------------------------------------------


class Progress:
  """The log action: `_log_train` over the steps since the last log, and the time-budget watch."""

  def __init__(self, exp, writer, start, t_start):
    self.exp, self.writer = exp, writer
    # Predicted end from the run's own steps; one warning when past time_budget_hours (minutes in, not hours).
    self.watch = plan_lib.BudgetWatch(exp.total_steps, start, exp.time_budget_hours, t_start, exp.steps_per_epoch)
    self.t_last, self.step_last = time.time(), start

  def restart(self, step):
    self.t_last, self.step_last = time.time(), step

  def __call__(self, step, pending, skipped):
    last = _log_train(self.writer, self.exp, step, pending, self.t_last, self.step_last, skipped)
    self.restart(step)
    known = self.watch.predicted_end is not None
    over_budget = self.watch.update(step, self.t_last)
    if over_budget:
      logging.warning("%s", over_budget)
    if not known and self.watch.predicted_end is not None:
      end = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.watch.predicted_end))
      logging.info("predicted end of this run: %s", end)
    return last


def _log_train(writer, exp, step, pending, t_last, step_last, skipped):
  """Means of the metrics since the last log, with throughput; written to TensorBoard and the log."""
  summary = {
    k: float(np.mean(v)) for k, v in jax.tree_util.tree_map(lambda *xs: np.stack(xs), *jax.device_get(pending)).items()
  }
  bad = int(round(summary.pop("nonfinite") * len(pending)))
  summary["epoch"] = step / exp.steps_per_epoch
  summary["peak_memory_mb"] = platform_lib.peak_memory_mb()
  rate = "throughput from the next log on (this window held only the compile)"
  if step > step_last:  # the first step's window is the compile: no rate from it
    steps_per_s = (step - step_last) / max(time.time() - t_last, 1e-9)
    summary["steps_per_sec"] = steps_per_s
    summary["images_per_sec"] = steps_per_s * exp.global_batch
    summary["epoch_time_min"] = exp.steps_per_epoch / max(steps_per_s, 1e-9) / 60
    eta = (exp.total_steps - step) / max(steps_per_s, 1e-9)
    rate = f"{summary['images_per_sec']:.1f} img/s | {steps_per_s:.2f} steps/s | ETA {_fmt_duration(eta)}"
  if bad or skipped:
    summary["nonfinite_steps"] = bad
    summary["skipped_steps_total"] = skipped
  last = {f"train/{k}": v for k, v in summary.items()}
  writer.write_scalars(step, last)
  logging.info(
    "step %d/%d | epoch %.2f/%.1f | loss %.4f | lr %.3g | grad_norm %.3g | feat_std %.3f | %s",
    step,
    exp.total_steps,
    summary["epoch"],
    exp.total_steps / exp.steps_per_epoch,
    summary["loss"],
    summary["lr"],
    summary["grad_norm"],
    summary["feature_variance"],
    rate,
  )
  return last


def _evaluate(run, step, state):
  """The evaluator's metrics of `state` (TensorBoard and the log), and the target encoder's attention maps."""
  metrics = run.evaluator(state)
  run.writer.write_scalars(step, metrics)
  if len(run.attention_images):
    _log_attention(run, step, state["target"])
  logging.info("eval at step %d: %s", step, ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
  return metrics


def _save(run, step, state, last, evaluated):
  """A checkpoint of `step`; best/ too when the best metric was just computed (or is the training loss)."""
  run.checkpointer.save(step, state)
  if evaluated or run.exp.eval.best_metric == "train/loss":
    run.checkpointer.save_best(step, state, last)


def _log_masks(run, step, host_batch):
  """The context / target blocks train_step draws at `step`, over 4 of its images (TensorBoard Images)."""
  images = np.asarray(host_batch["image"][:4])  # fewer when a host's batch is smaller (data.batch_size < 4)
  masks = jax.tree_util.tree_map(lambda m: m[: len(images)], jax.device_get(run.mask_fn(run.step_rng, step)))
  run.writer.write_images(step, {"train/masks": for_display(mask_overlay(images, masks, run.model.grid), images)})


def _log_attention(run, step, target_params):
  """The target encoder's last-block attention each patch receives (mean over queries and heads)."""
  images = run.attention_images
  weights = maps_lib.attention_weights(run.model, target_params, images)  # (B, 1, heads, N, N)
  received = maps_lib.attention_maps(weights, run.model.grid)[:, 0].mean(1)  # (B, gh, gw)
  run.writer.write_images(step, {"eval/attention": for_display(heat_overlay(images, received), images)})


def _write_histograms(run, step, histograms):
  """Parameter and gradient histograms: train_step bins them at multiples of histogram_every (zeros elsewhere)."""
  if histograms is not None and step % run.exp.histogram_every == 0:
    writers.write_histograms(run.writer, step, jax.device_get(histograms), run.histogram_names)


# ---------------------------------------------------------------------------------------------
# Tear-down.
# ---------------------------------------------------------------------------------------------


def _finish(run, step, last):
  """The run's end in the log, WORKDIR/summary.json and WORKDIR/report.md; returns the last logged metrics."""
  exp, skipped = run.exp, run.guard.skipped
  if run.profile is not None:
    run.profile.stop()
  if step >= exp.total_steps:
    logging.info("training finished at step %d", step)
  if skipped:
    logging.warning("%d update(s) skipped for NaN/Inf: steps %s", len(skipped), skipped)
  # One compile per run is a design rule (static shapes); the log shows it held.
  input_programs = f", device input {run.data_iter.compiles}" if run.on_device else ""
  logging.info("programs compiled: train_step %d%s", run.train_step._cache_size(), input_programs)  # pylint: disable=protected-access
  if jax.process_index() == 0:  # the last logged metrics, for launch/ablate.py and compare_runs
    summary = {"step": step, "finished": step >= exp.total_steps, "skipped_steps": skipped, "metrics": last}
    jsonfile.write(os.path.join(run.workdir, "summary.json"), summary)
    logging.info("run report: %s", report_lib.write_report(run.workdir, exp.report_criteria))
  return last
