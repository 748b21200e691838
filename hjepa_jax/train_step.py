"""The jitted H-JEPA update: masks, context/target encoders, predictor, hierarchical loss, AdamW, EMA.

State is one plain pytree {"step", "params": {"encoder", "predictor"[, "fpn", "projector"]},
"target", "opt"}. The step's rng is folded with state["step"], so a resumed run draws the same
masks. With `grad_accum_steps` k > 1 the batch is split into k interleaved micro-batches scanned
in sequence (activation memory of one micro-batch) and their gradients averaged: the same update
as one step on the whole batch (view-level losses then draw negatives from the micro-batch).

What level k >= 1 predicts is the hierarchy design's (`levels.py`, loss.hierarchy): pooled level-0 errors,
a per-level predictor on an intermediate block (deep), or its own larger target blocks (multiscale).

Diagnostics beside the loss: `pos_floor_level_k`, the loss a predictor that knows only the target
positions would get at level k (`losses.level_floor`, on that level's own targets), next to `loss_level_k`:
a loss near its floor means the predictor has learned where things are, not what they are.

View-level losses (`ViewLosses`): the batch carries a second global view of every image
("image_view2") and optionally `num_local` small crops ("local"). Each view is embedded by the
CONTEXT encoder (view 1 reuses the JEPA context pass; view 2 gets its own context mask; local
crops are encoded whole), mean-pooled and projected; InfoNCE and VICReg act on these embeddings,
always pairing the views of the same image.

Histograms (`histogram_every` > 0): at every N-th update train_step also returns, per leaf of the new
params and of the gradient (accumulated over micro-batches, before clipping), the counts of its finite
values in HISTOGRAM_BINS equal bins between the leaf's min and max. The binning sits in a lax.cond on the
step, so other steps only return zeros; with 0 the program is the one without histograms.
"""

import dataclasses

import jax
import jax.numpy as jnp
import optax

from hjepa_jax import levels as levels_lib, losses, masks as masks_lib, objectives
from hjepa_jax.model.hjepa import HJEPA, masked_mean, normalize_images
from hjepa_jax.optim import OptimSpec, ema_schedule, hyperparams, path_name


@dataclasses.dataclass(frozen=True)
class ViewLosses:
  """Losses between views of the same images (C-JEPA); a weight of 0 turns a term off."""

  contrastive_weight: float
  temperature: float
  vicreg_weight: float
  invariance: float
  variance: float
  covariance: float
  vicreg_predictions: bool  # variance/covariance also on block-mean predicted features
  num_local: int  # small crops per image, tied to the global views

  @property
  def enabled(self):
    return self.contrastive_weight > 0 or self.vicreg_weight > 0


@dataclasses.dataclass(frozen=True)
class SigReg:
  """SIGReg on the context encoder's mean token per image (objectives.sigreg); a weight of 0 turns it off."""

  weight: float
  num_slices: int
  num_points: int
  t_max: float


@dataclasses.dataclass(frozen=True)
class StepSpec:
  """Static description of one update (everything but arrays); experiment.step_spec builds and checks it."""

  model: HJEPA
  masks: masks_lib.MaskSpec
  optim: OptimSpec
  hierarchy: levels_lib.HierarchySpec
  loss_type: str
  grad_accum_steps: int
  views: ViewLosses
  sigreg: SigReg


def init_state(model: HJEPA, optimizer, rng):
  params = model.init(rng)
  return {
    "step": jnp.zeros([], jnp.int32),
    "params": params,
    "target": jax.tree_util.tree_map(jnp.copy, params["encoder"]),
    "opt": optimizer.init(params),
  }


def loss_fn(spec: StepSpec, params, target_params, images, masks, views=None):
  """Mean H-JEPA loss over the batch (+ view-level terms) and its diagnostics.

  `images`: normalised view 1 (B, H, W, 3); `views` (when spec.views is enabled): {"image_view2",
  "view2_masks", and "local" (B, N, h, w, 3) with num_local > 0}. No gradient reaches the target.
  """
  model, h = spec.model, spec.hierarchy
  target_params = jax.lax.stop_gradient(target_params)
  full, target_aux = model.encode(target_params, images)  # target encoder sees the whole image
  full = jax.lax.stop_gradient(full)
  full_ln = losses.layer_norm(full)
  level_masks, directions = masks.get("levels", ()), masks.get("sigreg_directions")
  masks = {k: v for k, v in masks.items() if k not in ("levels", "sigreg_directions")}
  pred, ctx, ctx_aux = model.predict(params, images, masks)
  levels = levels_lib.level_terms(h, model, params, images, masks, level_masks, pred, ctx_aux, full_ln, target_aux)
  refine = None if model.fpn is None else (lambda preds: model.refine_levels(params, preds, masks["target_idx"]))
  total, per_level = losses.levels_loss(levels, model.grid, h.weights, spec.loss_type, refine=refine)
  aux = {
    "loss_levels": per_level.mean(1),
    "feature_variance": losses.per_dim_std(ctx, masks["context_valid"]),
    "feature_variance_target": losses.per_dim_std(full),
  }
  if images.shape[0] >= 2:  # the position-only floor needs another image of the batch
    floors = [
      losses.level_floor(lv.full_target, lv.idx, lv.valid, model.grid, lv.pool, spec.loss_type) for lv in levels
    ]
    aux["pos_floor_levels"] = jnp.stack(floors).mean(1)
  loss = total.mean()
  aux["jepa_loss"] = loss
  if spec.sigreg.weight > 0:
    sr = spec.sigreg
    aux["sigreg_loss"] = objectives.sigreg(
      masked_mean(ctx, masks["context_valid"]), directions, sr.num_points, sr.t_max
    )
    loss = loss + sr.weight * aux["sigreg_loss"]
  if spec.views.enabled:
    view_loss, view_aux = _view_losses(spec, params, ctx, masks, pred, views)
    loss = loss + view_loss
    aux.update(view_aux)
  return loss, aux


def _view_losses(spec, params, ctx, masks, pred, views):
  """Contrastive / VICReg terms over [view 1, view 2, local crops] of the same images."""
  v, model = spec.views, spec.model
  z = [
    model.project(params, masked_mean(ctx, masks["context_valid"])),
    model.embed_view(
      params, views["image_view2"], views["view2_masks"]["context_idx"], views["view2_masks"]["context_valid"]
    ),
  ]
  if v.num_local:
    local = views["local"]
    b, n = local.shape[:2]
    zl = model.embed_view(params, local.reshape(b * n, *local.shape[2:]))
    z += list(zl.reshape(b, n, -1).swapaxes(0, 1))
  z = jnp.stack(z)  # (V, B, P), row b of every view is image b
  loss, aux = 0.0, {}
  if v.contrastive_weight > 0:
    nce, acc = objectives.info_nce(z, v.temperature, num_global=2)
    loss += v.contrastive_weight * nce
    aux.update(contrastive_loss=nce, contrastive_acc=acc)
  if v.vicreg_weight > 0:
    terms = objectives.vicreg_terms(z, num_global=2)
    if v.vicreg_predictions:  # one embedding per predicted block: (B*M, D)
      b, m, k, d = pred.shape
      block_mean = masked_mean(pred.reshape(b * m, k, d), masks["target_valid"].reshape(b * m, k))
      pv, pc = objectives.variance_covariance(block_mean)
      terms = dict(terms, variance=terms["variance"] + pv, covariance=terms["covariance"] + pc)
    vic = objectives.vicreg_loss(terms, v.invariance, v.variance, v.covariance)
    loss += v.vicreg_weight * vic
    aux.update({f"vicreg_{k}": t for k, t in terms.items()}, vicreg_loss=vic)
  return loss, aux


def step_inputs(spec: StepSpec, batch, rng):
  """(images, masks, views) of one update: normalised images and the masks drawn from the step's rng."""
  images = normalize_images(batch["image"])
  masks = masks_lib.sample_masks(rng, images.shape[0], spec.masks)
  if spec.hierarchy.level_masks:  # the multiscale design's own target blocks per level
    masks["levels"] = levels_lib.sample_level_masks(spec.hierarchy, rng, images.shape[0])
  if spec.sigreg.weight > 0:  # SIGReg's random directions, drawn afresh each step
    width, num = spec.model.encoder.width, spec.sigreg.num_slices
    masks["sigreg_directions"] = objectives.random_directions(jax.random.fold_in(rng, 2), width, num)
  views = None
  if spec.views.enabled:
    views = {
      "image_view2": normalize_images(batch["image_view2"]),
      "view2_masks": masks_lib.sample_masks(jax.random.fold_in(rng, 1), images.shape[0], spec.masks),
    }
    if spec.views.num_local:
      views["local"] = normalize_images(batch["local"])
  return images, masks, views


def batch_loss(spec: StepSpec, state, batch, rng):
  """(loss, aux) that `train_step(state, batch, rng)` differentiates, without the update (forward only)."""
  images, masks, views = step_inputs(spec, batch, jax.random.fold_in(rng, state["step"]))
  return loss_fn(spec, state["params"], state["target"], images, masks, views)


def _micro_batches(tree, k):
  """(B, ...) -> (k, B/k, ...) taking every k-th example, so each device keeps its own rows."""

  def split(x):
    return x.reshape(x.shape[0] // k, k, *x.shape[1:]).swapaxes(0, 1)

  return jax.tree_util.tree_map(split, tree)


# optax >= 0.2.6 has optax.tree.norm and deprecates global_norm; 0.2.5 (jax-metal profile) has only the latter.
_global_norm = getattr(getattr(optax, "tree", None), "norm", None) or optax.global_norm

# The loss terms' own metrics, logged when their term is on.
LOSS_METRICS = (
  "jepa_loss",
  "sigreg_loss",
  "contrastive_loss",
  "contrastive_acc",
  "vicreg_loss",
  "vicreg_invariance",
  "vicreg_variance",
  "vicreg_covariance",
)


HISTOGRAM_BINS = 30  # tf.summary.histogram's default


def leaf_names(tree):
  """ "encoder/blocks_0/qkv/kernel"-style names of a pytree's leaves, in leaf order."""
  paths, _ = jax.tree_util.tree_flatten_with_path(tree)
  return [path_name(path) for path, _ in paths]


def leaf_histograms(tree, bins=HISTOGRAM_BINS):
  """{"counts": int32 (L, bins), "min": (L,), "max": (L,)} over each leaf's finite values.

  Bin j is [min + j w, min + (j+1) w) with w = (max - min) / bins, the last one closed; a constant leaf has all its
  values in the last bin. All leaves go through one concatenated vector and three segment reductions: a fixed
  handful of ops whatever the number of leaves (one reduction pair per leaf doubled the compile of a 4-block
  train_step on CPU and ran 4x slower).
  """
  leaves = [x.astype(jnp.float32).ravel() for x in jax.tree_util.tree_leaves(tree)]
  n = len(leaves)
  leaf = jnp.concatenate([jnp.full(x.size, i, jnp.int32) for i, x in enumerate(leaves)])  # sorted leaf ids
  x = jnp.concatenate(leaves)
  finite = jnp.isfinite(x)
  lo = jax.ops.segment_min(jnp.where(finite, x, jnp.inf), leaf, n, indices_are_sorted=True)
  hi = jax.ops.segment_max(jnp.where(finite, x, -jnp.inf), leaf, n, indices_are_sorted=True)
  width = hi - lo
  pos = jnp.where(width[leaf] > 0, (x - lo[leaf]) / jnp.where(width > 0, width, 1.0)[leaf] * bins, bins - 1)
  slot = leaf * bins + jnp.clip(pos, 0, bins - 1).astype(jnp.int32)
  counts = jax.ops.segment_sum(finite.astype(jnp.int32), slot, n * bins).reshape(n, bins)
  return {"counts": counts, "min": lo, "max": hi}


def make_train_step(spec: StepSpec, optimizer, histogram_every=0):
  """Returns the pure `train_step(state, batch, rng) -> (state, metrics)`; jit it with state donated.

  With `histogram_every` N > 0, metrics also hold "histograms": {"params", "grads"} of `leaf_histograms`, filled
  at the updates that make state["step"] a multiple of N and zeros elsewhere (same shapes: one compile).
  """
  ema_fn = ema_schedule(spec.optim)
  grad_fn = jax.value_and_grad(lambda p, t, x, m, v: loss_fn(spec, p, t, x, m, v), has_aux=True)
  k = spec.grad_accum_steps

  def compute_grads(params, target, images, masks, views):
    if k == 1:
      return grad_fn(params, target, images, masks, views)
    if images.shape[0] % k:
      raise ValueError(f"batch {images.shape[0]} is not divisible by grad_accum_steps {k}")

    def body(acc, micro):
      out = grad_fn(params, target, *micro)
      return jax.tree_util.tree_map(jnp.add, acc, out), None

    micro = _micro_batches((images, masks, views), k)
    zeros = jax.tree_util.tree_map(
      jnp.zeros_like, jax.eval_shape(grad_fn, params, target, *jax.tree_util.tree_map(lambda x: x[0], micro))
    )
    acc, _ = jax.lax.scan(body, zeros, micro)
    return jax.tree_util.tree_map(lambda x: x / k, acc)

  def train_step(state, batch, rng):
    step = state["step"]
    images, masks, views = step_inputs(spec, batch, jax.random.fold_in(rng, step))
    (loss, aux), grads = compute_grads(state["params"], state["target"], images, masks, views)

    grad_norm = _global_norm(grads)
    updates, opt = optimizer.update(grads, state["opt"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    momentum = ema_fn(step)
    target = optax.incremental_update(params["encoder"], state["target"], 1.0 - momentum)
    hparams = hyperparams(opt)
    new_state = {"step": step + 1, "params": params, "target": target, "opt": opt}

    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    # A non-finite update leaves params, target and optimizer untouched so the last good state can be saved;
    # the step still counts (its batch was consumed), so a checkpoint's name always equals its state's step.
    new_state = jax.tree_util.tree_map(lambda n, o: jnp.where(finite, n, o), new_state, state)
    new_state["step"] = step + 1
    metrics = {
      "loss": loss,
      "grad_norm": grad_norm,
      "lr": hparams["learning_rate"],
      "weight_decay": hparams["weight_decay"],
      "ema_momentum": momentum,
      "feature_variance": aux["feature_variance"],
      "feature_variance_target": aux["feature_variance_target"],
      "context_tokens": masks["context_valid"].sum(-1).mean().astype(jnp.float32),
      "nonfinite": (~finite).astype(jnp.float32),
    }
    weights = spec.hierarchy.weights
    for i in range(len(weights)):
      metrics[f"loss_level_{i}"] = aux["loss_levels"][i]
    if "pos_floor_levels" in aux:  # what a position-only predictor would score, next to loss_level_i
      floor = aux["pos_floor_levels"]
      metrics["pos_floor"] = jnp.dot(jnp.asarray(weights, floor.dtype), floor)
      metrics.update({f"pos_floor_level_{i}": floor[i] for i in range(len(weights))})
    for name in LOSS_METRICS:
      if name in aux:
        metrics[name] = aux[name]
    if histogram_every:

      def histograms(trees):
        return {name: leaf_histograms(tree) for name, tree in trees.items()}

      def zeros(trees):
        return jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), jax.eval_shape(histograms, trees))

      trees = {"params": new_state["params"], "grads": grads}
      metrics["histograms"] = jax.lax.cond((step + 1) % histogram_every == 0, histograms, zeros, trees)
    return new_state, metrics

  return train_step
