"""H-JEPA pretraining loop: `train_and_evaluate(config, workdir)`, importable from a notebook.

Read top to bottom: config -> experiment (every key read, durations resolved) -> logging ->
mesh -> model, optimizer, state -> checkpoint restore -> input pipeline -> jitted update ->
evaluators -> loop (log, eval, checkpoint, stop on signal or non-finite loss).
"""

import collections
import contextlib
import json
import logging
import os
import signal
import time

import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from hjepa_jax import checkpoint as ckpt_lib
from hjepa_jax import data as data_lib
from hjepa_jax import experiment as experiment_lib
from hjepa_jax import masks as masks_lib
from hjepa_jax import plan as plan_lib
from hjepa_jax import platform as platform_lib
from hjepa_jax import report as report_lib
from hjepa_jax import workdir as workdir_lib
from hjepa_jax import writers
from hjepa_jax.errors import RunError
from hjepa_jax.optim import make_optimizer
from hjepa_jax.tools import maps as maps_lib
from hjepa_jax.tools.overlay import for_display, heat_overlay, mask_overlay
from hjepa_jax.train_step import init_state, leaf_names, make_train_step


class TrainingDiverged(RunError):
  """Loss or gradients became NaN/Inf; the last good checkpoint is untouched."""


# ---------------------------------------------------------------------------------------------
# Logging.
# ---------------------------------------------------------------------------------------------


def _setup_logging(workdir):
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
  return handler


def _fmt_duration(seconds):
  seconds = int(max(seconds, 0))
  return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class StopRequest:
  """SIGINT/SIGTERM ask the loop to finish the current step, save and exit 0; a 2nd SIGINT aborts."""

  def __init__(self):
    self.requested = None
    self._old = {}

  def __enter__(self):
    for sig in (signal.SIGINT, signal.SIGTERM):
      try:
        self._old[sig] = signal.signal(sig, self._handle)
      except ValueError:  # not the main thread (e.g. a notebook worker): no handlers
        pass
    return self

  def _handle(self, signum, frame):
    if self.requested is not None and signum == signal.SIGINT:
      raise KeyboardInterrupt
    self.requested = signal.Signals(signum).name
    logging.warning(
      "%s received: finishing the current step, saving a checkpoint and exiting "
      "(press Ctrl-C again to abort without saving)",
      self.requested,
    )

  def __exit__(self, *exc):
    for sig, old in self._old.items():
      signal.signal(sig, old)


# ---------------------------------------------------------------------------------------------
# The run.
# ---------------------------------------------------------------------------------------------


def _to_global(batch, sharding, process_count):
  if process_count == 1:
    return jax.device_put(batch, sharding)
  return jax.tree_util.tree_map(lambda x: jax.make_array_from_process_local_data(sharding, x), batch)


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


def _read_summary(workdir):
  try:
    with open(os.path.join(workdir, "summary.json")) as f:
      return json.load(f)
  except (OSError, ValueError):
    return {}


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str):
  """Trains (resuming from `workdir` if it holds checkpoints) and returns the last logged metrics."""
  platform = platform_lib.detect()
  exp, reader = experiment_lib.prepare(config, platform)  # every bad value fails here, before anything is written
  spec = exp.step_spec
  os.makedirs(workdir, exist_ok=True)
  with contextlib.ExitStack() as cleanup:
    if jax.process_index() == 0:
      cleanup.enter_context(workdir_lib.exclusive(workdir))  # a second live run on this workdir stops here
    log_handler = _setup_logging(workdir)
    cleanup.callback(log_handler.close)
    cleanup.callback(logging.getLogger().removeHandler, log_handler)
    return _run(config, exp, reader, spec, platform, workdir, cleanup)


def _run(config, exp, reader, spec, platform, workdir, cleanup):
  t_start = time.time()
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

  # Mesh: one "data" axis over every device; batches sharded on it, the state replicated.
  mesh = Mesh(np.asarray(jax.devices()), ("data",))
  replicated, data_sharding = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))

  # Model, optimizer, state.
  model = spec.model
  init_rng, step_rng = experiment_lib.init_rngs(exp.seed)
  params_shape = jax.eval_shape(model.init, init_rng)
  tx = make_optimizer(spec.optim, params_shape)
  init_fn = jax.jit(lambda r: init_state(model, tx, r), out_shardings=replicated)
  checkpointer = ckpt_lib.Checkpointer(workdir, exp.keep_checkpoints, exp.eval.best_metric or None, exp.eval.best_mode)
  cleanup.callback(checkpointer.close)
  state, source = checkpointer.restore(
    ckpt_lib.abstract_like(jax.eval_shape(init_fn, init_rng), replicated), exp.resume
  )
  start = 0 if state is None else int(state["step"])
  if start >= exp.total_steps:  # a finished run's command again: change nothing
    logging.info(
      "this run is finished: %s is at step %d of total_steps=%d; nothing to do (raise total_steps to train longer)",
      source,
      start,
      exp.total_steps,
    )
    return _read_summary(workdir).get("metrics", {})
  if jax.process_index() == 0:
    with open(os.path.join(workdir, "config.json"), "w") as f:
      f.write(config.to_json_best_effort(indent=2))
  writer = writers.create_default_writer(workdir, just_logging=jax.process_index() > 0)
  if state is None:
    state = init_fn(init_rng)
    logging.info(
      "initialised a new run: %s params", f"{sum(x.size for x in jax.tree_util.tree_leaves(state['params'])):,}"
    )
    writer.write_hparams(config.to_dict())  # clu flattens nested keys (and tuples) itself
  else:
    logging.info("resumed from %s at step %d", source, start)

  # Input pipeline, started where the restored state left off: tf.data on the host, or (data.pipeline=device)
  # batches made on the devices, already global arrays on the mesh.
  on_device = reader.data.pipeline == "device"
  where = dict(seed=exp.seed, start_step=start, batch_size=exp.global_batch, num_views=2 if spec.views.enabled else 1)
  if on_device:
    data_iter = data_lib.make_device_iterator(reader.data, mesh=mesh, **where)
  else:
    data_iter = data_lib.make_pretrain_iterator(
      reader.data, process_index=jax.process_index(), process_count=jax.process_count(), **where
    )
  if hasattr(data_iter, "close"):
    cleanup.callback(data_iter.close)

  # The update: one compile for the whole run.
  train_step = jax.jit(
    make_train_step(spec, tx, histogram_every=exp.histogram_every),
    in_shardings=(replicated, data_sharding, replicated),
    out_shardings=(replicated, replicated),
    donate_argnums=(0,) if platform.donate else (),
  )

  evaluator = None
  if exp.eval.every:
    from hjepa_jax.evaluation.online import OnlineEvaluator  # pylint: disable=g-import-not-at-top

    evaluator = OnlineEvaluator(model, reader.data, exp.eval)
  # The same first images of the evaluation test split at every evaluation, for the attention maps.
  attention_images = evaluator.splits["test"][0][: exp.eval.attention_images] if evaluator else None

  def log_attention(at_step, target_params):
    """The target encoder's last-block attention each patch receives (mean over queries and heads)."""
    weights = maps_lib.attention_weights(model, target_params, attention_images)  # (B, 1, heads, N, N)
    received = maps_lib.attention_maps(weights, model.grid)[:, 0].mean(1)  # (B, gh, gw)
    writer.write_images(
      at_step, {"eval/attention": for_display(heat_overlay(attention_images, received), attention_images)}
    )

  leaves = leaf_names(params_shape)  # gradients have the params' structure
  histogram_names = {"params": leaves, "grads": leaves}

  # The masks train_step draws at a given step, recomputed for a few images (for TensorBoard).
  mask_fn = jax.jit(lambda r, s: masks_lib.sample_masks(jax.random.fold_in(r, s), 4, spec.masks))

  def log_masks(at_step, host_batch):
    images = np.asarray(host_batch["image"][:4])
    masks = jax.device_get(mask_fn(step_rng, at_step))
    writer.write_images(at_step, {"train/masks": for_display(mask_overlay(images, masks, model.grid), images)})

  def last_good():
    done = checkpointer.latest_step()
    if done is None:
      return "No checkpoint was saved yet: rerunning starts afresh."
    return (
      f"The last good checkpoint is step {done} in {workdir}/checkpoints; rerunning the same command resumes there."
    )

  guard = NonfiniteGuard(exp.max_skipped_steps, last_good)
  # Predicted end from the run's own steps; one warning when it is past time_budget_hours (minutes in, not hours).
  watch = plan_lib.BudgetWatch(exp.total_steps, start, exp.time_budget_hours, t_start, exp.steps_per_epoch)
  last = {}
  pending = []
  step = start
  with writers.ensure_flushes(writer), StopRequest() as stop:
    while step < exp.total_steps:
      host_batch = next(data_iter)
      if exp.log_mask_images and (step == start or (exp.eval.every and (step + 1) % exp.eval.every == 0)):
        log_masks(step, host_batch)
      batch = host_batch if on_device else _to_global(host_batch, data_sharding, platform.process_count)
      if step == start:
        logging.info("compiling train_step (static shapes: the only compile of this run)...")
        t_compile = time.time()
      state, metrics = train_step(state, batch, step_rng)
      step += 1
      histograms = metrics.pop("histograms", None)  # zeros except at multiples of histogram_every
      if histograms is not None and step % exp.histogram_every == 0:
        writers.write_histograms(writer, step, jax.device_get(histograms), histogram_names)
      if step == start + 1:
        jax.block_until_ready(metrics["loss"])
        logging.info("train_step compiled and ran step %d in %.1f s", step, time.time() - t_compile)
        t_last, step_last = time.time(), step
      pending.append(metrics)
      guard.push(step, metrics["nonfinite"])

      log_now = step % exp.log_every == 0 or step == exp.total_steps or stop.requested
      eval_now = evaluator is not None and (step % exp.eval.every == 0 or step == exp.total_steps)
      save_now = step % exp.ckpt_every == 0 or step == exp.total_steps or stop.requested
      if not (log_now or eval_now or save_now):
        continue
      guard.settle()  # nothing is logged, evaluated or saved past an unchecked step

      if log_now:
        last = _log_train(writer, exp, step, pending, t_last, step_last, len(guard.skipped))
        pending = []
        t_last, step_last = time.time(), step
        known = watch.predicted_end is not None
        over_budget = watch.update(step, t_last)
        if over_budget:
          logging.warning("%s", over_budget)
        if not known and watch.predicted_end is not None:
          logging.info(
            "predicted end of this run: %s", time.strftime("%Y-%m-%d %H:%M", time.localtime(watch.predicted_end))
          )

      eval_metrics = {}
      if eval_now:
        eval_metrics = evaluator(state)
        writer.write_scalars(step, eval_metrics)
        if len(attention_images):
          log_attention(step, state["target"])
        logging.info("eval at step %d: %s", step, ", ".join(f"{k} {v:.4f}" for k, v in eval_metrics.items()))
        last.update(eval_metrics)
      if save_now:
        checkpointer.save(step, state)
        if eval_metrics or exp.eval.best_metric == "train/loss":
          checkpointer.save_best(step, state, last)
      if stop.requested:
        logging.info(
          "stopped by %s at step %d; checkpoint saved. Run the same command to resume.", stop.requested, step
        )
        break
  if step >= exp.total_steps:
    logging.info("training finished at step %d", step)
  if guard.skipped:
    logging.warning("%d update(s) skipped for NaN/Inf: steps %s", len(guard.skipped), guard.skipped)
  # One compile per run is a design rule (static shapes); the log shows it held.
  input_programs = f", device input {data_iter.compiles}" if on_device else ""
  logging.info("programs compiled: train_step %d%s", train_step._cache_size(), input_programs)  # pylint: disable=protected-access
  if jax.process_index() == 0:  # the last logged metrics, for launch/ablate.py and compare_runs
    with open(os.path.join(workdir, "summary.json"), "w") as f:
      json.dump(
        {"step": step, "finished": step >= exp.total_steps, "skipped_steps": guard.skipped, "metrics": last},
        f,
        indent=2,
      )
    logging.info("run report: %s", report_lib.write_report(workdir, exp.report_criteria))
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
