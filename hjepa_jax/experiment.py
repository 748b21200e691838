"""Config -> the objects a run is made of, in one place.

Training, offline evaluation, ablations, the step benchmark and the visualiser all build their
model, masks, optimizer schedules and step from here, so they cannot drift apart. The spec
dataclasses carry no defaults: every value comes from the config schema (`config.base_config()`),
and every bound is checked here, once, with an error naming the config key.
"""

import dataclasses
import logging

import jax

from hjepa_jax import config as config_lib
from hjepa_jax import levels as levels_lib
from hjepa_jax import losses
from hjepa_jax import masks as masks_lib
from hjepa_jax import platform as platform_lib
from hjepa_jax.config import ConfigError, require
from hjepa_jax.masks import MaskSpec, block_shapes
from hjepa_jax.model import BlockOptions, ModelSpec, build_model
from hjepa_jax.model.fpn import FUSIONS
from hjepa_jax.model.predictor import LAYOUTS
from hjepa_jax.model.vit import ATTENTION_IMPLS, DTYPES, REMAT_POLICIES, VARIANTS, parse_variant
from hjepa_jax.optim import EMA_SCHEDULES, OptimSpec
from hjepa_jax.report import CRITERIA
from hjepa_jax.train_step import SigReg, StepSpec, ViewLosses

MAX_HIERARCHIES = 4
EVAL_ENCODERS = ("target", "online", "init")


@dataclasses.dataclass(frozen=True)
class EvalSchedule:
  every: int  # 0: never during training
  max_examples: int
  knn_ks: tuple
  batch_size: int
  encoders: tuple  # of EVAL_ENCODERS
  seed: int  # the run's seed: the "init" encoder is the step-0 encoder train.py initialises
  best_metric: str
  best_mode: str
  attention_images: int  # TensorBoard attention maps of this many fixed test images at each evaluation


@dataclasses.dataclass(frozen=True)
class Experiment:
  step_spec: StepSpec
  seed: int
  micro_batch: int  # data.batch_size: one optimizer micro-batch, all hosts together
  global_batch: int  # micro_batch * grad_accum_steps: images per update
  steps_per_epoch: int
  total_steps: int
  time_budget_hours: float | None  # unset: no budget check (plan.BudgetWatch)
  log_every: int
  log_mask_images: bool
  histogram_every: int  # 0: no parameter / gradient histograms
  profile_steps: int  # 0: no jax.profiler trace (train.py, periodic.Profile)
  report_criteria: str  # the seed guide's criteria report.md ticks (hjepa_jax/report.py)
  ckpt_every: int
  keep_checkpoints: int
  resume: str
  max_skipped_steps: int
  eval: EvalSchedule


def init_rngs(seed):
  """(init_rng, step_rng) of a run: the one place that fixes how a seed becomes the step-0 params."""
  return tuple(jax.random.split(jax.random.PRNGKey(seed)))


# ---------------------------------------------------------------------------------------------
# Model.
# ---------------------------------------------------------------------------------------------


def block_options(m) -> BlockOptions:
  """BlockOptions from `config.model`; LayerScale's init is read (and checked) even when it is off."""
  require(m.mlp_ratio > 0, "model.mlp_ratio", f"must be > 0, got {m.mlp_ratio}")
  require(m.layerscale_init > 0, "model.layerscale_init", f"must be > 0, got {m.layerscale_init}")
  require(m.rope_base > 0, "model.rope_base", f"must be > 0, got {m.rope_base}")
  require(m.remat in REMAT_POLICIES, "model.remat", f"{m.remat!r} is not one of {REMAT_POLICIES}")
  require(
    m.attention_impl in ATTENTION_IMPLS, "model.attention_impl", f"{m.attention_impl!r} is not one of {ATTENTION_IMPLS}"
  )
  require(m.dtype in DTYPES, "model.dtype", f"{m.dtype!r} is not one of {tuple(DTYPES)}")
  return BlockOptions(
    mlp_ratio=m.mlp_ratio,
    fused_attention=m.fused_attention,
    attention_impl=m.attention_impl,
    layerscale_init=m.layerscale_init if m.layerscale else 0.0,
    rope=m.rope,
    rope_base=m.rope_base,
    remat=m.remat,
    dtype=m.dtype,
  )


def encoder_dims(m):
  """The encoder's width, depth, num_heads and patch_size: the variant's, with explicit model.* dims on top."""
  dims = {}
  if m.variant:
    try:
      dims = parse_variant(m.variant)
    except ValueError as e:
      raise ConfigError(f"config key 'model.variant': {e}") from None
  for key in ("width", "depth", "num_heads", "patch_size"):
    if m[key] is not None:
      require(m[key] >= 1, f"model.{key}", f"must be >= 1, got {m[key]}")
      dims[key] = m[key]
  missing = sorted({"width", "depth", "num_heads", "patch_size"} - set(dims))
  require(
    not missing,
    "model.variant",
    f"is empty, so set model.{', model.'.join(missing)} "
    f"(or a variant NAME/PATCH with NAME in {sorted(VARIANTS)}, e.g. 'S/16')",
  )
  require(
    dims["width"] % dims["num_heads"] == 0,
    "model.num_heads",
    f"width {dims['width']} is not divisible by {dims['num_heads']} heads",
  )
  return dims


def model_spec(cfg) -> ModelSpec:
  """ModelSpec from `config.model` plus what it depends on elsewhere (image size, levels, view losses).

  Sub-keys of switched-off features (FPN, projector) are read and checked all the same.
  """
  m, image_size = cfg.model, cfg.data.image_size
  dims = encoder_dims(m)
  require(
    image_size % dims["patch_size"] == 0,
    "data.image_size",
    f"{image_size} is not divisible by the patch size {dims['patch_size']}",
  )
  pred, fpn, proj = m.predictor, m.fpn, m.projector
  for key in ("width", "depth", "num_heads"):
    require(pred[key] >= 1, f"model.predictor.{key}", f"must be >= 1, got {pred[key]}")
  require(
    pred.width % pred.num_heads == 0,
    "model.predictor.num_heads",
    f"predictor width {pred.width} is not divisible by {pred.num_heads} heads",
  )
  require(pred.layout in LAYOUTS, "model.predictor.layout", f"{pred.layout!r} is not one of {LAYOUTS}")
  require(fpn.fusion in FUSIONS, "model.fpn.fusion", f"must be {' or '.join(map(repr, FUSIONS))}, got {fpn.fusion!r}")
  require(fpn.feature_dim >= 1, "model.fpn.feature_dim", f"must be >= 1, got {fpn.feature_dim}")
  require(proj.hidden_dim >= 1, "model.projector.hidden_dim", f"must be >= 1, got {proj.hidden_dim}")
  require(proj.dim >= 1, "model.projector.dim", f"must be >= 1, got {proj.dim}")
  return ModelSpec(
    image_size=image_size,
    block=block_options(m),
    predictor_width=pred.width,
    predictor_depth=pred.depth,
    predictor_num_heads=pred.num_heads,
    predictor_layout=pred.layout,
    fpn_levels=cfg.loss.num_hierarchies if fpn.enabled else 0,
    fpn_feature_dim=fpn.feature_dim,
    fpn_fusion=fpn.fusion,
    projector_hidden=proj.hidden_dim if view_losses(cfg).enabled else 0,
    projector_dim=proj.dim,
    level_blocks=deep_blocks(cfg, dims["depth"]),
    level_predictor_depth=cfg.loss.deep.predictor_depth,
    **dims,
  )


def deep_blocks(cfg, depth):
  """The encoder block (1-based) each level reads in the deep design, level 0 (the top) first; () otherwise.

  `loss.deep.*` and the design's bounds are checked whatever the design, like every switched-off feature.
  """
  lo, levels, design = cfg.loss, cfg.loss.num_hierarchies, cfg.loss.hierarchy
  require(design in levels_lib.DESIGNS, "loss.hierarchy", f"{design!r} is not one of {levels_lib.DESIGNS}")
  require(
    design == "pooled" or levels >= 2,
    "loss.hierarchy",
    f"{design!r} shapes the levels >= 1, but loss.num_hierarchies={levels}; use 2 or more levels",
  )
  require(
    design == "pooled" or not cfg.model.fpn.enabled,
    "model.fpn.enabled",
    f"the FPN refines the pooled design's levels only, not loss.hierarchy={design!r}",
  )
  require(lo.deep.predictor_depth >= 1, "loss.deep.predictor_depth", f"must be >= 1, got {lo.deep.predictor_depth}")
  blocks = tuple(int(b) for b in lo.deep.blocks)
  require(
    not blocks or (len(blocks) == levels - 1 and all(1 <= b <= depth for b in blocks)),
    "loss.deep.blocks",
    f"must be empty (evenly spaced) or give one encoder block in [1, {depth}] per level >= 1 "
    f"({levels - 1} of them), got {blocks}",
  )
  if design != "deep":
    return ()
  return (depth, *blocks) if blocks else levels_lib.default_blocks(depth, levels)


def model(cfg):
  """The HJEPA model of a config (what train.py trains and evaluation/runner.py restores)."""
  return build_model(model_spec(cfg))


# ---------------------------------------------------------------------------------------------
# Masks, losses, optimizer, step.
# ---------------------------------------------------------------------------------------------


MASK_CAPACITIES = ("batch_min", "exact")


def mask_spec(mk, grid, batch_size) -> MaskSpec:
  """MaskSpec from `config.mask` on a patch grid for updates of `batch_size` images (all micro-batches
  together, so gradient accumulation draws the same masks); ranges are checked here."""
  return _with_capacities(_unsized_mask_spec(mk, grid), mk.capacity, batch_size)


def _unsized_mask_spec(mk, grid) -> MaskSpec:
  """The checked MaskSpec of `config.mask` with capacities still 0 (sizing them compiles, so it comes last)."""
  for name in ("target_scale", "target_aspect", "context_scale", "context_aspect"):
    pair = tuple(mk[name])
    require(
      len(pair) == 2 and 0 < pair[0] <= pair[1], f"mask.{name}", f"must be an increasing positive pair, got {pair}"
    )
  for name in ("target_scale", "context_scale"):
    require(mk[name][1] <= 1, f"mask.{name}", f"is a fraction of the grid: must be <= 1, got {tuple(mk[name])}")
    kind = name.split("_")[0]
    shapes = block_shapes(grid, mk[name], mk[f"{kind}_aspect"])
    require(
      len(shapes),
      f"mask.{name}",
      f"no block of the {grid[0]}x{grid[1]} patch grid has scale in "
      f"{tuple(mk[name])} and aspect in {tuple(mk[kind + '_aspect'])}: widen the ranges or change "
      "data.image_size / the patch size",
    )
  require(mk.num_targets >= 1, "mask.num_targets", f"must be >= 1, got {mk.num_targets}")
  require(mk.capacity in MASK_CAPACITIES, "mask.capacity", f"{mk.capacity!r} is not one of {MASK_CAPACITIES}")
  n = grid[0] * grid[1]
  require(1 <= mk.min_context < n, "mask.min_context", f"must be in [1, {n}), got {mk.min_context}")
  return MaskSpec(
    grid=tuple(grid),
    num_targets=mk.num_targets,
    target_scale=tuple(mk.target_scale),
    target_aspect=tuple(mk.target_aspect),
    context_scale=tuple(mk.context_scale),
    context_aspect=tuple(mk.context_aspect),
    min_context=mk.min_context,
    context_capacity=0,
    target_capacity=0,
  )


def view_losses(cfg) -> ViewLosses:
  """ViewLosses from `loss.contrastive`, `loss.vicreg` and `data.multicrop.num_local`."""
  con, vic = cfg.loss.contrastive, cfg.loss.vicreg
  require(con.weight >= 0, "loss.contrastive.weight", f"must be >= 0, got {con.weight}")
  require(con.temperature > 0, "loss.contrastive.temperature", f"must be > 0, got {con.temperature}")
  require(vic.weight >= 0, "loss.vicreg.weight", f"must be >= 0, got {vic.weight}")
  coeffs = dict(invariance=vic.invariance, variance=vic.variance, covariance=vic.covariance)
  for name, value in coeffs.items():
    require(value >= 0, f"loss.vicreg.{name}", f"must be >= 0, got {value}")
  enabled = con.weight > 0 or vic.weight > 0
  num_local = cfg.data.multicrop.num_local
  require(
    not num_local or enabled,
    "data.multicrop.num_local",
    f"{num_local} local crops are only used by the view-level losses; set loss.contrastive.weight or "
    "loss.vicreg.weight > 0, or --config.data.multicrop.num_local=0",
  )
  require(
    not vic.on_predictions or vic.weight > 0,
    "loss.vicreg.on_predictions",
    "has no effect while loss.vicreg.weight is 0; set a weight or turn it off",
  )
  return ViewLosses(
    contrastive_weight=con.weight,
    temperature=con.temperature,
    vicreg_weight=vic.weight,
    vicreg_predictions=vic.on_predictions,
    num_local=num_local,
    **coeffs,
  )


def sigreg_spec(cfg) -> SigReg:
  """SigReg from `loss.sigreg`; its shape keys are checked even while it is off, so a typo fails either way."""
  sr = cfg.loss.sigreg
  require(sr.weight >= 0, "loss.sigreg.weight", f"must be >= 0, got {sr.weight}")
  require(sr.num_slices >= 1, "loss.sigreg.num_slices", f"must be >= 1, got {sr.num_slices}")
  require(sr.num_points >= 3, "loss.sigreg.num_points", f"must be >= 3 (trapezoid nodes), got {sr.num_points}")
  require(sr.t_max > 0, "loss.sigreg.t_max", f"must be > 0, got {sr.t_max}")
  return SigReg(weight=sr.weight, num_slices=sr.num_slices, num_points=sr.num_points, t_max=sr.t_max)


def optim_spec(cfg, total_steps, warmup_steps) -> OptimSpec:
  """OptimSpec from `config.optim` and `config.ema` for a run of `total_steps` updates."""
  o, ema = cfg.optim, cfg.ema
  require(o.lr > 0, "optim.lr", f"must be > 0, got {o.lr}")
  for key in ("start_lr", "final_lr", "weight_decay", "final_weight_decay", "clip_norm"):
    require(o[key] >= 0, f"optim.{key}", f"must be >= 0, got {o[key]}")
  for key in ("b1", "b2"):
    require(0 <= o[key] < 1, f"optim.{key}", f"must be in [0, 1), got {o[key]}")
  for key in ("start_lr", "final_lr"):  # warmup rises from start_lr to lr, the cosine falls from lr to final_lr
    require(o[key] <= o.lr, f"optim.{key}", f"must be <= optim.lr ({o.lr}), got {o[key]}")
  require(o.eps > 0, "optim.eps", f"must be > 0, got {o.eps}")
  require(0 <= ema.start <= 1, "ema.start", f"EMA momentum must be in [0, 1], got {ema.start}")
  require(ema.start <= ema.end <= 1, "ema.end", f"must be in [ema.start ({ema.start}), 1], got {ema.end}")
  require(ema.schedule in EMA_SCHEDULES, "ema.schedule", f"{ema.schedule!r} is not one of {EMA_SCHEDULES}")
  require(0 < ema.ramp_fraction <= 1, "ema.ramp_fraction", f"must be in (0, 1], got {ema.ramp_fraction}")
  return OptimSpec(
    total_steps=total_steps,
    warmup_steps=warmup_steps,
    lr=o.lr,
    start_lr=o.start_lr,
    final_lr=o.final_lr,
    weight_decay=o.weight_decay,
    final_weight_decay=o.final_weight_decay,
    b1=o.b1,
    b2=o.b2,
    eps=o.eps,
    clip_norm=o.clip_norm,
    ema_start=ema.start,
    ema_end=ema.end,
    ema_schedule=ema.schedule,
    ema_ramp_steps=max(1, int(round(ema.ramp_fraction * total_steps))),
  )


def warmup_steps(cfg, steps_per_epoch, total_steps) -> int:
  """`optim.warmup_*` in steps, capped at `optim.warmup_max_fraction` of the run: the cosine decay always happens."""
  frac = cfg.optim.warmup_max_fraction
  require(0 <= frac < 1, "optim.warmup_max_fraction", f"must be in [0, 1), got {frac}")
  asked = config_lib.resolve_steps(cfg, "optim.warmup", steps_per_epoch, allow_zero=True)
  cap = int(frac * total_steps)
  if asked > cap:
    logging.info(
      "warmup capped at %d of %d steps (optim.warmup_max_fraction=%g; asked %d)", cap, total_steps, frac, asked
    )
  return min(asked, cap)


def grad_accum_steps(cfg) -> int:
  accum = cfg.optim.grad_accum_steps
  require(accum >= 1, "optim.grad_accum_steps", f"must be >= 1, got {accum}")
  return accum


def hierarchy_weights(cfg, grid):
  """`loss.hierarchy_weights`, checked against `loss.num_hierarchies` and the patch grid (before any compile)."""
  weights = tuple(float(w) for w in cfg.loss.hierarchy_weights)
  require(
    min(weights, default=0) >= 0 and sum(weights) > 0,
    "loss.hierarchy_weights",
    f"must be >= 0 with at least one > 0, got {weights}",
  )
  levels = cfg.loss.num_hierarchies
  require(1 <= levels <= MAX_HIERARCHIES, "loss.num_hierarchies", f"must be in [1, {MAX_HIERARCHIES}], got {levels}")
  require(
    len(weights) == levels,
    "loss.hierarchy_weights",
    f"has {len(weights)} entries but loss.num_hierarchies={levels}; give one weight "
    f"per level, e.g. --config.loss.hierarchy_weights='(1.0, 0.7, 0.5)'",
  )
  require(
    2 ** (levels - 1) <= max(grid),
    "loss.num_hierarchies",
    f"level {levels - 1} pools {2 ** (levels - 1)}x{2 ** (levels - 1)} cells, "
    f"larger than the {grid[0]}x{grid[1]} patch grid",
  )
  growth = cfg.loss.multiscale.scale_growth
  require(growth >= 1, "loss.multiscale.scale_growth", f"must be >= 1 (coarse blocks are larger), got {growth}")
  return weights


def multiscale_level_masks(cfg, weights, base: MaskSpec):
  """The multiscale design's mask specs of levels 1.. (capacities still 0; empty for the other designs),
  each checked to have a block shape and to leave room for mask.min_context, before anything compiles."""
  if cfg.loss.hierarchy != "multiscale":
    return ()
  growth, specs = cfg.loss.multiscale.scale_growth, []
  for level in range(1, len(weights)):
    spec = levels_lib.level_mask_spec(base, level, max(1, base.num_targets // 2**level), growth)
    require(
      len(spec.target_shapes),
      "loss.multiscale.scale_growth",
      f"level {level}'s target blocks (scale {spec.target_scale}) have no shape on the {base.grid[0]}x{base.grid[1]} grid",
    )
    room = spec.num_patches - base.min_context
    require(
      spec.target_scale[0] * spec.num_patches <= room,
      "loss.multiscale.scale_growth",
      f"level {level}'s target blocks (scale {spec.target_scale}) leave fewer than mask.min_context="
      f"{base.min_context} context patches of {spec.num_patches}; use a smaller growth or fewer levels",
    )
    specs.append(spec)
  return tuple(specs)


def _with_capacities(spec, capacity, batch_size):
  if capacity == "exact":
    return dataclasses.replace(spec, context_capacity=spec.context_bound, target_capacity=spec.target_bound)
  ctx, tgt = masks_lib.capacities(spec, batch_size)
  return dataclasses.replace(spec, context_capacity=ctx, target_capacity=tgt)


def step_spec(cfg, total_steps, warmup_steps) -> StepSpec:
  """The static description of one update: model, masks, schedules, losses, accumulation."""
  net = model(cfg)
  weights = hierarchy_weights(cfg, net.grid)
  require(cfg.loss.type in losses.LOSS_TYPES, "loss.type", f"{cfg.loss.type!r} is not one of {losses.LOSS_TYPES}")
  accum = grad_accum_steps(cfg)
  optim, views = optim_spec(cfg, total_steps, warmup_steps), view_losses(cfg)
  batch = cfg.data.batch_size * accum
  base = _unsized_mask_spec(cfg.mask, net.grid)
  level_masks = multiscale_level_masks(cfg, weights, base)
  # Last, once every key is checked: estimating capacities compiles.
  masks, *level_masks = (_with_capacities(m, cfg.mask.capacity, batch) for m in (base, *level_masks))
  return StepSpec(
    model=net,
    masks=masks,
    optim=optim,
    hierarchy=levels_lib.HierarchySpec(design=cfg.loss.hierarchy, weights=weights, level_masks=tuple(level_masks)),
    loss_type=cfg.loss.type,
    grad_accum_steps=accum,
    views=views,
    sigreg=sigreg_spec(cfg),
  )


# ---------------------------------------------------------------------------------------------
# The whole run.
# ---------------------------------------------------------------------------------------------


def eval_prefix(encoder):
  """Metric-name prefix of an evaluated encoder: "eval/" for the target (the names best_metric has always
  used), "eval/online/", "eval/init/"."""
  return "eval/" if encoder == "target" else f"eval/{encoder}/"


def eval_schedule(cfg, steps_per_epoch) -> EvalSchedule:
  e = cfg.eval
  require(cfg.best_mode in ("max", "min"), "best_mode", f"must be 'max' or 'min', got {cfg.best_mode!r}")
  every = config_lib.resolve_steps(cfg, "eval.every", steps_per_epoch, allow_zero=True)
  knn_ks = tuple(int(k) for k in e.knn_ks)
  require(knn_ks and min(knn_ks) >= 1, "eval.knn_ks", f"must be positive integers, got {knn_ks}")
  require(e.max_examples >= 1, "eval.max_examples", f"must be >= 1, got {e.max_examples}")
  require(e.batch_size >= 1, "eval.batch_size", f"must be >= 1, got {e.batch_size}")
  encoders = tuple(e.encoders)
  require(
    encoders and set(encoders) <= set(EVAL_ENCODERS) and len(set(encoders)) == len(encoders),
    "eval.encoders",
    f"must be distinct names from {EVAL_ENCODERS}, got {encoders}",
  )
  best = cfg.best_metric
  if best:
    known = {"train/loss"}
    for prefix in [eval_prefix(enc) for enc in encoders if enc != "init"]:
      known |= {f"{prefix}knn_top1_k{k}" for k in knn_ks} | {f"{prefix}feature_std", f"{prefix}effective_rank"}
    require(best in known, "best_metric", f"{best!r} is not computed; choose one of {sorted(known)}")
    require(
      every > 0 or best == "train/loss",
      "eval.every_steps" if e.every_steps is not None else "eval.every_epochs",
      f"is 0, but best_metric={best!r} needs evaluations during training; set best_metric='train/loss' or ''",
    )
    lower_is_better = best.rsplit("/", 1)[-1].endswith("loss")
    want = "min" if lower_is_better else "max"
    require(
      cfg.best_mode == want,
      "best_mode",
      f"{best!r} is {'a loss: lower' if lower_is_better else 'a score: higher'} is better, so best_mode must be "
      f"{want!r}, got {cfg.best_mode!r} (keeping the {'worst' if lower_is_better else 'lowest'} checkpoint as "
      f"best); use --config.best_mode={want}",
    )
  cap = cfg.data.eval_max_examples
  max_examples = min(e.max_examples, cap) if cap else e.max_examples
  require(
    0 <= e.attention_images <= min(max_examples, 64),
    "eval.attention_images",
    f"must be in [0, {min(max_examples, 64)}] (at most 64 and eval.max_examples), got {e.attention_images}",
  )
  require(
    max(knn_ks) <= max_examples,
    "eval.knn_ks",
    f"k-NN with k={max(knn_ks)} needs at least that many examples, but eval.max_examples / "
    f"data.eval_max_examples allow {max_examples}",
  )
  return EvalSchedule(
    every=every,
    max_examples=max_examples,
    knn_ks=knn_ks,
    batch_size=e.batch_size,
    encoders=encoders,
    seed=cfg.seed,
    best_metric=best,
    best_mode=cfg.best_mode,
    attention_images=e.attention_images,
  )


def build_experiment(cfg, num_examples, platform) -> Experiment:
  """Resolves the whole run from a ConfigReader; raises ConfigError naming the key on bad values."""
  platform.check_dtype(cfg.model.dtype)
  platform.check_attention(cfg.model.fused_attention, cfg.model.attention_impl)
  micro, accum = cfg.data.batch_size, grad_accum_steps(cfg)
  require(
    micro % platform.num_devices == 0,
    "data.batch_size",
    f"{micro} is not divisible by the {platform.num_devices} devices; use a multiple of {platform.num_devices}",
  )
  global_batch = micro * accum
  steps_per_epoch = num_examples // global_batch
  require(
    steps_per_epoch >= 1,
    "data.batch_size",
    f"batch {micro} x {accum} accumulation exceeds the {num_examples} examples of one epoch",
  )
  require(0 <= cfg.seed < 2**32, "seed", f"must be in [0, 2**32) (a 32-bit PRNG seed), got {cfg.seed}")
  total = config_lib.resolve_steps(cfg, "total", steps_per_epoch)
  warmup = warmup_steps(cfg, steps_per_epoch, total)
  budget = cfg.time_budget_hours
  require(budget is None or budget > 0, "time_budget_hours", f"must be > 0 hours (or unset), got {budget}")
  require(cfg.log_every_steps >= 1, "log_every_steps", f"must be >= 1, got {cfg.log_every_steps}")
  require(
    cfg.histogram_every_steps >= 0, "histogram_every_steps", f"must be >= 0 (0: off), got {cfg.histogram_every_steps}"
  )
  require(cfg.profile_steps >= 0, "profile_steps", f"must be >= 0 (0: off), got {cfg.profile_steps}")
  require(cfg.report.criteria in CRITERIA, "report.criteria", f"{cfg.report.criteria!r} is not one of {CRITERIA}")
  require(
    cfg.keep_checkpoints >= 1,
    "keep_checkpoints",
    f"must be >= 1 (the newest k checkpoints are kept; 0 would delete every one), got {cfg.keep_checkpoints}",
  )
  ckpt_every, schedule = (
    config_lib.resolve_steps(cfg, "ckpt_every", steps_per_epoch),
    eval_schedule(cfg, steps_per_epoch),
  )
  require(cfg.max_skipped_steps >= 0, "max_skipped_steps", f"must be >= 0, got {cfg.max_skipped_steps}")
  return Experiment(
    step_spec=step_spec(cfg, total, warmup),  # last: every other value is checked before its mask draw compiles
    seed=cfg.seed,
    micro_batch=micro,
    global_batch=global_batch,
    steps_per_epoch=steps_per_epoch,
    total_steps=total,
    time_budget_hours=budget,
    log_every=cfg.log_every_steps,
    log_mask_images=cfg.log_mask_images,
    histogram_every=cfg.histogram_every_steps,
    profile_steps=cfg.profile_steps,
    report_criteria=cfg.report.criteria,
    ckpt_every=ckpt_every,
    keep_checkpoints=cfg.keep_checkpoints,
    resume=cfg.resume,
    max_skipped_steps=cfg.max_skipped_steps,
    eval=schedule,
  )


def prepare(config, platform=None, num_examples=None):
  """(Experiment, ConfigReader): the config checked against the schema, every key read, nothing compiled.

  Fails with a ConfigError (or DataError) naming the key on unknown keys, wrong types, bad values and
  keys no code reads. Any other exception is a bug and keeps its traceback. `num_examples` (an epoch's
  size) skips loading the data to count it: the planner passes the catalogue's figure for absent data.
  """
  from hjepa_jax import data as data_lib  # pylint: disable=g-import-not-at-top
  from hjepa_jax.data.validate import check_data_config  # pylint: disable=g-import-not-at-top

  config_lib.check_schema(config)
  platform = platform or platform_lib.detect()
  reader = config_lib.ConfigReader(config)
  check_data_config(reader.data)
  num_examples = num_examples or data_lib.pretrain_num_examples(reader.data)
  exp = build_experiment(reader, num_examples, platform)
  reader.assert_all_read()
  return exp, reader
