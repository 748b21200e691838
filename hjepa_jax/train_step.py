"""The jitted H-JEPA update: masks, context/target encoders, predictor, hierarchical loss, AdamW, EMA.

State is one plain pytree {"step", "params": {"encoder", "predictor"}, "target", "opt"}. The step's
rng is folded with state["step"], so a resumed run draws the same masks. With `grad_accum_steps`
k > 1 the batch is split into k interleaved micro-batches scanned in sequence (activation memory of
one micro-batch) and their gradients averaged: the same update as one step on the whole batch.
"""
import dataclasses

import jax
import jax.numpy as jnp
import optax

from hjepa_jax import losses, masks as masks_lib
from hjepa_jax.model.hjepa import HJEPA, normalize_images
from hjepa_jax.optim import OptimSpec, ema_schedule, lr_schedule, wd_schedule


@dataclasses.dataclass(frozen=True)
class StepSpec:
  """Static description of one update (everything but arrays)."""
  model: HJEPA
  masks: masks_lib.MaskSpec
  optim: OptimSpec
  hierarchy_weights: tuple = (1.0,)
  loss_type: str = "smooth_l1"
  grad_accum_steps: int = 1

  def __post_init__(self):
    if not 1 <= len(self.hierarchy_weights) <= 4:
      raise ValueError(f"1 to 4 hierarchy levels are supported, got {len(self.hierarchy_weights)}")
    if self.loss_type not in losses.LOSS_TYPES:
      raise ValueError(f"loss type {self.loss_type!r} not in {losses.LOSS_TYPES}")
    if self.grad_accum_steps < 1:
      raise ValueError(f"grad_accum_steps must be >= 1, got {self.grad_accum_steps}")


def init_state(model: HJEPA, optimizer, rng):
  params = model.init(rng)
  return {
      "step": jnp.zeros([], jnp.int32),
      "params": params,
      "target": jax.tree_util.tree_map(jnp.copy, params["encoder"]),
      "opt": optimizer.init(params),
  }


def loss_fn(spec: StepSpec, params, target_params, images, masks):
  """Mean H-JEPA loss over the batch and its diagnostics; no gradient reaches the target params."""
  model = spec.model
  target_params = jax.lax.stop_gradient(target_params)
  full, _ = model.encode(target_params, images)                 # target encoder sees the whole image
  full = jax.lax.stop_gradient(full)
  target = jax.vmap(lambda f, i: f[i])(losses.layer_norm(full), masks["target_idx"])
  pred, ctx = model.predict(params, images, masks)
  total, per_level = losses.hierarchical_loss(pred, target, masks["target_idx"], masks["target_valid"],
                                              model.grid, spec.hierarchy_weights, spec.loss_type)
  aux = {
      "loss_levels": per_level.mean(1),
      "feature_variance": losses.per_dim_std(ctx, masks["context_valid"]),
      "feature_variance_target": losses.per_dim_std(full),
  }
  return total.mean(), aux


def _micro_batches(tree, k):
  """(B, ...) -> (k, B/k, ...) taking every k-th example, so each device keeps its own rows."""
  def split(x):
    return x.reshape(x.shape[0] // k, k, *x.shape[1:]).swapaxes(0, 1)
  return jax.tree_util.tree_map(split, tree)


def make_train_step(spec: StepSpec, optimizer):
  """Returns the pure `train_step(state, batch, rng) -> (state, metrics)`; jit it with state donated."""
  lr_fn, wd_fn, ema_fn = lr_schedule(spec.optim), wd_schedule(spec.optim), ema_schedule(spec.optim)
  grad_fn = jax.value_and_grad(lambda p, t, x, m: loss_fn(spec, p, t, x, m), has_aux=True)
  k = spec.grad_accum_steps

  def compute_grads(params, target, images, masks):
    if k == 1:
      return grad_fn(params, target, images, masks)
    if images.shape[0] % k:
      raise ValueError(f"batch {images.shape[0]} is not divisible by grad_accum_steps {k}")

    def body(acc, micro):
      out = grad_fn(params, target, *micro)
      return jax.tree_util.tree_map(jnp.add, acc, out), None

    zeros = jax.tree_util.tree_map(
        jnp.zeros_like, jax.eval_shape(grad_fn, params, target, *jax.tree_util.tree_map(
            lambda x: x[0], _micro_batches((images, masks), k))))
    acc, _ = jax.lax.scan(body, zeros, _micro_batches((images, masks), k))
    return jax.tree_util.tree_map(lambda x: x / k, acc)

  def train_step(state, batch, rng):
    step = state["step"]
    rng = jax.random.fold_in(rng, step)
    images = normalize_images(batch["image"])
    masks = masks_lib.sample_masks(rng, images.shape[0], spec.masks)
    (loss, aux), grads = compute_grads(state["params"], state["target"], images, masks)

    grad_norm = jnp.sqrt(sum(jnp.sum(jnp.square(g)) for g in jax.tree_util.tree_leaves(grads)))
    updates, opt = optimizer.update(grads, state["opt"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    momentum = ema_fn(step)
    target = jax.tree_util.tree_map(lambda t, p: momentum * t + (1.0 - momentum) * p,
                                    state["target"], params["encoder"])
    new_state = {"step": step + 1, "params": params, "target": target, "opt": opt}

    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    # A non-finite update leaves the whole state untouched so the last good state can be saved.
    new_state = jax.tree_util.tree_map(lambda n, o: jnp.where(finite, n, o), new_state, state)
    metrics = {
        "loss": loss,
        "grad_norm": grad_norm,
        "lr": lr_fn(step),
        "weight_decay": wd_fn(step),
        "ema_momentum": momentum,
        "feature_variance": aux["feature_variance"],
        "feature_variance_target": aux["feature_variance_target"],
        "context_tokens": masks["context_valid"].sum(-1).mean().astype(jnp.float32),
        "nonfinite": (~finite).astype(jnp.float32),
    }
    for i in range(len(spec.hierarchy_weights)):
      metrics[f"loss_level_{i}"] = aux["loss_levels"][i]
    return new_state, metrics

  return train_step
