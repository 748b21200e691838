"""H-JEPA pretraining loop: `train_and_evaluate(config, workdir)`, importable from a notebook.

Read top to bottom: config -> experiment (every key read, durations resolved) -> logging ->
mesh -> model, optimizer, state -> checkpoint restore -> input pipeline -> jitted update ->
evaluators -> loop (log, eval, checkpoint, stop on signal or non-finite loss).
"""
import dataclasses
import json
import logging
import os
import signal
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from hjepa_jax import checkpoint as ckpt_lib
from hjepa_jax import config as config_lib
from hjepa_jax import data as data_lib
from hjepa_jax import platform as platform_lib
from hjepa_jax.config import ConfigError, require
from hjepa_jax import masks as masks_lib
from hjepa_jax.tools.overlay import mask_overlay
from hjepa_jax.masks import MaskSpec
from hjepa_jax.model import BlockOptions, ModelSpec, build_model
from hjepa_jax.optim import OptimSpec, make_optimizer
from hjepa_jax.train_step import StepSpec, ViewLosses, init_state, make_train_step


class TrainingDiverged(RuntimeError):
  """Loss or gradients became NaN/Inf; the last good checkpoint is untouched."""


# ---------------------------------------------------------------------------------------------
# Experiment: every config key is read here (or by the data/eval code it calls).
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Experiment:
  step_spec: StepSpec
  seed: int
  micro_batch: int          # data.batch_size: one optimizer micro-batch, all hosts together
  global_batch: int         # micro_batch * grad_accum_steps: images per update
  steps_per_epoch: int
  total_steps: int
  log_every: int
  log_mask_images: bool
  ckpt_every: int
  keep_checkpoints: int
  resume: str
  stop_on_nonfinite: bool
  eval: "EvalSchedule"


@dataclasses.dataclass(frozen=True)
class EvalSchedule:
  every: int                # 0: never during training
  max_examples: int
  knn_ks: tuple
  batch_size: int
  best_metric: str
  best_mode: str


def model_spec(m, image_size, num_levels=1, projector=False) -> ModelSpec:
  """ModelSpec from the `model` subtree (a ConfigReader or ConfigDict).

  The FPN spans `num_levels` hierarchy levels; `projector` adds the head of the view-level losses.
  Sub-keys of switched-off features are read (and checked) all the same: every key is consumed.
  """
  layerscale_init = m.layerscale_init
  require(layerscale_init > 0, "model.layerscale_init", f"must be > 0, got {layerscale_init}")
  fpn, proj = m.fpn, m.projector
  require(fpn.fusion in ("add", "concat"), "model.fpn.fusion", f"must be 'add' or 'concat', got {fpn.fusion!r}")
  require(fpn.feature_dim >= 1, "model.fpn.feature_dim", f"must be >= 1, got {fpn.feature_dim}")
  require(proj.hidden_dim >= 1 and proj.dim >= 1, "model.projector",
          f"hidden_dim and dim must be >= 1, got {proj.hidden_dim}, {proj.dim}")
  block = BlockOptions(
      mlp_ratio=m.mlp_ratio, fused_attention=m.fused_attention, attention_impl=m.attention_impl,
      layerscale_init=layerscale_init if m.layerscale else 0.0, rope=m.rope, rope_base=m.rope_base,
      remat=m.remat, dtype=m.dtype)
  return ModelSpec(image_size=image_size, variant=m.variant or None, width=m.width, depth=m.depth,
                   num_heads=m.num_heads, patch_size=m.patch_size, block=block,
                   predictor_width=m.predictor.width, predictor_depth=m.predictor.depth,
                   predictor_num_heads=m.predictor.num_heads,
                   fpn_levels=num_levels if fpn.enabled else 0, fpn_feature_dim=fpn.feature_dim,
                   fpn_fusion=fpn.fusion, projector_hidden=proj.hidden_dim if projector else 0,
                   projector_dim=proj.dim)


def view_losses(loss, data) -> ViewLosses:
  """ViewLosses from `loss.contrastive`, `loss.vicreg` and `data.multicrop.num_local`."""
  con, vic = loss.contrastive, loss.vicreg
  require(con.weight >= 0, "loss.contrastive.weight", f"must be >= 0, got {con.weight}")
  require(con.temperature > 0, "loss.contrastive.temperature", f"must be > 0, got {con.temperature}")
  require(vic.weight >= 0, "loss.vicreg.weight", f"must be >= 0, got {vic.weight}")
  coeffs = dict(invariance=vic.invariance, variance=vic.variance, covariance=vic.covariance)
  for name, value in coeffs.items():
    require(value >= 0, f"loss.vicreg.{name}", f"must be >= 0, got {value}")
  enabled = con.weight > 0 or vic.weight > 0
  num_local = data.multicrop.num_local
  require(not num_local or enabled, "data.multicrop.num_local",
          f"{num_local} local crops are only used by the view-level losses; set loss.contrastive.weight or "
          "loss.vicreg.weight > 0, or --config.data.multicrop.num_local=0")
  require(not vic.on_predictions or vic.weight > 0, "loss.vicreg.on_predictions",
          "has no effect while loss.vicreg.weight is 0; set a weight or turn it off")
  return ViewLosses(contrastive_weight=con.weight, temperature=con.temperature, vicreg_weight=vic.weight,
                    vicreg_predictions=vic.on_predictions, num_local=num_local, **coeffs)


def build_experiment(cfg, num_examples, platform) -> Experiment:
  """Resolves the whole run from a ConfigReader; raises ConfigError naming the key on bad values."""
  views = view_losses(cfg.loss, cfg.data)
  model = build_model(model_spec(cfg.model, cfg.data.image_size, cfg.loss.num_hierarchies, views.enabled))
  platform.check_dtype(cfg.model.dtype)
  platform.check_attention(cfg.model.fused_attention, cfg.model.attention_impl)
  mk = cfg.mask
  masks = MaskSpec(grid=model.grid, num_targets=mk.num_targets, target_scale=tuple(mk.target_scale),
                   target_aspect=tuple(mk.target_aspect), context_scale=tuple(mk.context_scale),
                   context_aspect=tuple(mk.context_aspect), min_context=mk.min_context,
                   context_fraction=mk.context_fraction)

  weights = tuple(float(w) for w in cfg.loss.hierarchy_weights)
  require(len(weights) == cfg.loss.num_hierarchies, "loss.hierarchy_weights",
          f"has {len(weights)} entries but loss.num_hierarchies={cfg.loss.num_hierarchies}; give one weight "
          f"per level, e.g. --config.loss.hierarchy_weights='(1.0, 0.7, 0.5)'")
  require(2 ** (len(weights) - 1) <= max(model.grid), "loss.num_hierarchies",
          f"level {len(weights) - 1} pools {2 ** (len(weights) - 1)}x{2 ** (len(weights) - 1)} cells, "
          f"larger than the {model.grid[0]}x{model.grid[1]} patch grid")

  o = cfg.optim
  accum = o.grad_accum_steps
  micro = cfg.data.batch_size
  require(micro >= 1, "data.batch_size", f"must be >= 1, got {micro}")
  require(micro % platform.num_devices == 0, "data.batch_size",
          f"{micro} is not divisible by the {platform.num_devices} devices; use a multiple of {platform.num_devices}")
  require(accum >= 1, "optim.grad_accum_steps", f"must be >= 1, got {accum}")
  global_batch = micro * accum
  steps_per_epoch = num_examples // global_batch
  require(steps_per_epoch >= 1, "data.batch_size",
          f"batch {micro} x {accum} accumulation exceeds the {num_examples} examples of one epoch")
  total = config_lib.resolve_steps(cfg, "total", steps_per_epoch)
  warmup = min(config_lib.resolve_steps(o, "warmup", steps_per_epoch, allow_zero=True), total)
  optim = OptimSpec(total_steps=total, warmup_steps=warmup, lr=o.lr, start_lr=o.start_lr, final_lr=o.final_lr,
                    weight_decay=o.weight_decay, final_weight_decay=o.final_weight_decay, b1=o.b1, b2=o.b2,
                    eps=o.eps, clip_norm=o.clip_norm, ema_start=cfg.ema.start, ema_end=cfg.ema.end)
  require(o.lr > 0, "optim.lr", f"must be > 0, got {o.lr}")
  spec = StepSpec(model, masks, optim, hierarchy_weights=weights, loss_type=cfg.loss.type, grad_accum_steps=accum,
                  views=views)

  e = cfg.eval
  best_metric = cfg.best_metric
  require(cfg.best_mode in ("max", "min"), "best_mode", f"must be 'max' or 'min', got {cfg.best_mode!r}")
  eval_every = config_lib.resolve_steps(e, "every", steps_per_epoch, allow_zero=True)
  knn_ks = tuple(int(k) for k in e.knn_ks)
  if best_metric:
    known = {f"eval/knn_top1_k{k}" for k in knn_ks} | {"eval/feature_std", "eval/effective_rank", "train/loss"}
    require(best_metric in known, "best_metric", f"{best_metric!r} is not computed; choose one of {sorted(known)}")
    require(eval_every > 0 or best_metric == "train/loss", "eval.every_epochs",
            f"best_metric={best_metric!r} needs evaluations during training")
  cap = cfg.data.eval_max_examples
  schedule = EvalSchedule(every=eval_every, max_examples=min(e.max_examples, cap) if cap else e.max_examples,
                          knn_ks=knn_ks, batch_size=e.batch_size, best_metric=best_metric, best_mode=cfg.best_mode)
  require(cfg.log_every_steps >= 1, "log_every_steps", "must be >= 1")
  return Experiment(
      step_spec=spec, seed=cfg.seed, micro_batch=micro, global_batch=global_batch,
      steps_per_epoch=steps_per_epoch, total_steps=total, log_every=cfg.log_every_steps,
      log_mask_images=cfg.log_mask_images,
      ckpt_every=config_lib.resolve_steps(cfg, "ckpt_every", steps_per_epoch), keep_checkpoints=cfg.keep_checkpoints,
      resume=cfg.resume, stop_on_nonfinite=cfg.stop_on_nonfinite, eval=schedule)


def prepare(config: ml_collections.ConfigDict, platform=None):
  """Validates `config` and builds the Experiment without touching any data beyond its size.

  Fails before any compile on unknown keys, wrong types, bad values, and keys no code reads.
  """
  config_lib.check_schema(config)
  platform = platform or platform_lib.detect()
  reader = config_lib.ConfigReader(config)
  try:
    from hjepa_jax.data.validate import check_data_config  # pylint: disable=g-import-not-at-top
    check_data_config(reader.data)
    num_examples = data_lib.pretrain_num_examples(reader.data)
    exp = build_experiment(reader, num_examples, platform)
  except (ValueError, TypeError) as e:
    if isinstance(e, (ConfigError, data_lib.DataError)):
      raise
    raise ConfigError(str(e)) from e
  reader.assert_all_read()
  return exp, reader


# ---------------------------------------------------------------------------------------------
# Logging.
# ---------------------------------------------------------------------------------------------


def _setup_logging(workdir):
  os.makedirs(os.path.join(workdir, "logs"), exist_ok=True)
  handler = logging.FileHandler(os.path.join(workdir, "logs", "training.log"))
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
    logging.warning("%s received: finishing the current step, saving a checkpoint and exiting "
                    "(press Ctrl-C again to abort without saving)", self.requested)

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


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str):
  """Trains (resuming from `workdir` if it holds checkpoints) and returns the last logged metrics."""
  from clu import metric_writers  # imports TensorFlow: keep it out of the core modules

  platform = platform_lib.detect()
  exp, reader = prepare(config, platform)
  spec = exp.step_spec
  os.makedirs(workdir, exist_ok=True)
  log_handler = _setup_logging(workdir)
  logging.info("backend %s (%s) x %d devices, %d process(es)", platform.backend, platform.device_kind,
               platform.num_devices, platform.process_count)
  logging.info("%d steps: %d per epoch at %d images per update (%d x %d accumulation); %d context / %d target "
               "slots per block", exp.total_steps, exp.steps_per_epoch, exp.global_batch, exp.micro_batch,
               spec.grad_accum_steps, spec.masks.context_capacity, spec.masks.target_capacity)
  if jax.process_index() == 0:
    with open(os.path.join(workdir, "config.json"), "w") as f:
      f.write(config.to_json_best_effort(indent=2))
  writer = metric_writers.create_default_writer(workdir, just_logging=jax.process_index() > 0)

  # Mesh: one "data" axis over every device; batches sharded on it, the state replicated.
  mesh = Mesh(np.asarray(jax.devices()), ("data",))
  replicated, data_sharding = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))

  # Model, optimizer, state.
  model = spec.model
  rng = jax.random.PRNGKey(exp.seed)
  init_rng, step_rng = jax.random.split(rng)
  params_shape = jax.eval_shape(model.init, init_rng)
  tx = make_optimizer(spec.optim, params_shape)
  init_fn = jax.jit(lambda r: init_state(model, tx, r), out_shardings=replicated)
  checkpointer = ckpt_lib.Checkpointer(workdir, exp.keep_checkpoints, exp.eval.best_metric or None, exp.eval.best_mode)
  state, source = checkpointer.restore(ckpt_lib.abstract_like(jax.eval_shape(init_fn, init_rng), replicated),
                                       exp.resume)
  if state is None:
    state = init_fn(init_rng)
    logging.info("initialised a new run: %s params", f"{sum(x.size for x in jax.tree_util.tree_leaves(state['params'])):,}")
    writer.write_hparams({k: v for k, v in _flat(config).items()})
  else:
    logging.info("resumed from %s at step %d", source, int(state["step"]))
  start = int(state["step"])

  # Input pipeline, started where the restored state left off.
  data_iter = data_lib.make_pretrain_iterator(reader.data, seed=exp.seed, start_step=start,
                                              process_index=jax.process_index(),
                                              process_count=jax.process_count(), batch_size=exp.global_batch,
                                              num_views=2 if spec.views.enabled else 1)

  # The update: one compile for the whole run.
  train_step = jax.jit(make_train_step(spec, tx), in_shardings=(replicated, data_sharding, replicated),
                       out_shardings=(replicated, replicated), donate_argnums=(0,) if platform.donate else ())

  evaluator = None
  if exp.eval.every:
    from hjepa_jax.evaluation.online import OnlineEvaluator  # pylint: disable=g-import-not-at-top
    evaluator = OnlineEvaluator(model, reader.data, exp.eval)

  # The masks train_step draws at a given step, recomputed for a few images (for TensorBoard).
  mask_fn = jax.jit(lambda r, s: masks_lib.sample_masks(jax.random.fold_in(r, s), 4, spec.masks))

  def log_masks(at_step, host_batch):
    images = host_batch["image"][:4]
    masks = jax.device_get(mask_fn(step_rng, at_step))
    writer.write_images(at_step, {"train/masks": mask_overlay(images, masks, model.grid)})

  last = {}
  pending = []
  t_last, step_last = time.time(), start
  step = start
  try:
    with metric_writers.ensure_flushes(writer), StopRequest() as stop:
      while step < exp.total_steps:
        host_batch = next(data_iter)
        if exp.log_mask_images and (step == start or (exp.eval.every and (step + 1) % exp.eval.every == 0)):
          log_masks(step, host_batch)
        batch = _to_global(host_batch, data_sharding, platform.process_count)
        state, metrics = train_step(state, batch, step_rng)
        step += 1
        pending.append(metrics)

        if step % exp.log_every == 0 or step == exp.total_steps or stop.requested:
          summary = {k: float(np.mean(v)) for k, v in jax.tree_util.tree_map(
              lambda *xs: np.stack(xs), *jax.device_get(pending)).items()}
          bad = int(round(summary.pop("nonfinite") * len(pending)))
          pending = []
          dt = time.time() - t_last
          steps_per_s = (step - step_last) / max(dt, 1e-9)
          t_last, step_last = time.time(), step
          summary.update({"steps_per_sec": steps_per_s, "images_per_sec": steps_per_s * exp.global_batch,
                          "epoch": step / exp.steps_per_epoch,
                          "epoch_time_min": exp.steps_per_epoch / max(steps_per_s, 1e-9) / 60,
                          "peak_memory_mb": platform_lib.peak_memory_mb()})
          if bad:
            summary["nonfinite_steps"] = bad
          last = {f"train/{k}": v for k, v in summary.items()}
          writer.write_scalars(step, last)
          eta = (exp.total_steps - step) / max(steps_per_s, 1e-9)
          logging.info("step %d/%d | epoch %.2f/%.1f | loss %.4f | lr %.3g | grad_norm %.3g | feat_std %.3f | "
                       "%.1f img/s | %.2f steps/s | ETA %s", step, exp.total_steps, summary["epoch"],
                       exp.total_steps / exp.steps_per_epoch, summary["loss"], summary["lr"],
                       summary["grad_norm"], summary["feature_variance"], summary["images_per_sec"],
                       steps_per_s, _fmt_duration(eta))
          if bad and exp.stop_on_nonfinite:
            raise TrainingDiverged(
                f"loss or gradients were NaN/Inf in {bad} step(s) before step {step}; those updates were not "
                f"applied and nothing was saved. The last good checkpoint is step "
                f"{checkpointer.latest_step()} in {workdir}/checkpoints. Try a lower learning rate "
                f"(--config.optim.lr), longer warmup (--config.optim.warmup_epochs), tighter clipping "
                f"(--config.optim.clip_norm=1.0), or float32 compute (--config.model.dtype=float32).")

        eval_metrics = {}
        if evaluator is not None and (step % exp.eval.every == 0 or step == exp.total_steps):
          eval_metrics = evaluator(state["target"])
          writer.write_scalars(step, eval_metrics)
          logging.info("eval at step %d: %s", step, ", ".join(f"{k} {v:.4f}" for k, v in eval_metrics.items()))
          last.update(eval_metrics)
        if step % exp.ckpt_every == 0 or step == exp.total_steps or stop.requested:
          checkpointer.save(step, state)
          if eval_metrics or exp.eval.best_metric == "train/loss":
            checkpointer.save_best(step, state, last)
        if stop.requested:
          logging.info("stopped by %s at step %d; checkpoint saved. Run the same command to resume.",
                       stop.requested, step)
          break
    if step >= exp.total_steps:
      logging.info("training finished at step %d", step)
    if jax.process_index() == 0:  # the last logged metrics, for launch/ablate.py and compare_runs
      with open(os.path.join(workdir, "summary.json"), "w") as f:
        json.dump({"step": step, "metrics": last}, f, indent=2)
  finally:
    checkpointer.close()
    close = getattr(data_iter, "close", None)
    if close:
      close()
    logging.getLogger().removeHandler(log_handler)
    log_handler.close()
  return last


def _flat(config, prefix=""):
  out = {}
  for k, v in config.items():
    if isinstance(v, ml_collections.ConfigDict):
      out.update(_flat(v, prefix + k + "."))
    elif isinstance(v, (int, float, str, bool)):
      out[prefix + k] = v
    elif v is not None:
      out[prefix + k] = json.dumps(v) if isinstance(v, (list, tuple)) else str(v)
  return out
