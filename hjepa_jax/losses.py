"""H-JEPA objective: per-level regression of predictions onto layer-normalised target features."""

import jax
import jax.numpy as jnp

from hjepa_jax import hierarchy

LOSS_TYPES = ("smooth_l1", "mse")


def smooth_l1(x, y, beta=1.0):
  """Elementwise Huber / smooth-L1 as in torch.nn.functional.smooth_l1_loss (I-JEPA's loss)."""
  d = jnp.abs(x - y)
  return jnp.where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta)


def elementwise(kind, x, y):
  if kind == "smooth_l1":
    return smooth_l1(x, y)
  if kind == "mse":
    return jnp.square(x - y)
  raise ValueError(f"loss type {kind!r} not in {LOSS_TYPES}")


def layer_norm(x, eps=1e-6):
  """LayerNorm over the last axis without affine parameters (I-JEPA's target normalisation)."""
  mean = x.mean(-1, keepdims=True)
  var = jnp.square(x - mean).mean(-1, keepdims=True)
  return (x - mean) * jax.lax.rsqrt(var + eps)


def hierarchical_loss(pred, target, idx, valid, grid, weights, kind, refine=None):
  """The pooled design: level k compares level 0's predictions and targets averaged over 2^k cells.

  pred/target: (B, M, K, D) at grid indices idx (B, M, K) with validity valid (B, M, K); returns (loss (B,),
  per-level (L, B)) as `levels_loss` does.
  """
  return levels_loss([(pred, target, idx, valid, k) for k in range(len(weights))], grid, weights, kind, refine)


def levels_loss(levels, grid, weights, kind, refine=None):
  """Weighted sum over levels of per-example masked means; returns (loss (B,), per-level (L, B)).

  levels: per level (pred, target, idx, valid, pool[, ...]) (a levels.Level or a tuple), pred/target (B, M, K, D)
  at grid indices idx (B, M, K) with validity valid, compared over 2^pool x 2^pool cells (0: every valid
  token is its own cell). Each level's loss is averaged over the valid cells of ALL target blocks of an
  example, then the batch mean is taken by the caller, so micro-batching does not change the result.
  `refine` maps the list of pooled predictions to refined ones (the FPN); targets never pass through it.
  """
  preds, targets, cells = [], [], []
  for pred, target, idx, valid, pool, *_ in levels:
    target = jax.lax.stop_gradient(target)
    if pool:
      pred, _ = hierarchy.pool_to_level(pred, idx, valid, grid, pool)
      target, valid = hierarchy.pool_to_level(target, idx, valid, grid, pool)
    preds.append(pred)
    targets.append(target)
    cells.append(valid)
  if refine is not None:
    preds = refine(preds)
  per_level = []
  for p, t, cell_valid in zip(preds, targets, cells):
    err = elementwise(kind, p, t).mean(-1)  # (B, M, C)
    w = cell_valid.astype(err.dtype)
    per_level.append((err * w).sum((1, 2)) / jnp.maximum(w.sum((1, 2)), 1.0))
  per_level = jnp.stack(per_level)
  total = jnp.tensordot(jnp.asarray(weights, per_level.dtype), per_level, axes=1)
  return total, per_level


def position_floor(full_target, idx, valid, grid, weights, kind):
  """Per-level loss (L, B) of a predictor that knows only positions, for the pooled design (`level_floor`)."""
  return jnp.stack([level_floor(full_target, idx, valid, grid, k, kind) for k in range(len(weights))])


def level_floor(full_target, idx, valid, grid, pool, kind):
  """One level's loss (B,) of a predictor that knows only positions: the floor the real loss must beat.

  full_target: layer-normalised target features at every patch (B, N, D); idx/valid/pool: the level's target
  tokens as in `levels_loss`. The position-only prediction for token p of example b is the mean target
  feature at p over the OTHER examples of the batch (leave-one-out: an image never predicts itself),
  pooled into cells exactly as the real predictions are. A batch estimate, not a running mean kept in
  the state: no extra state (checkpoints unchanged), no lag behind a moving target encoder, one
  compile. Its cost: under MSE the leave-one-out mean's own noise adds 1/(B-1) of the per-position
  variance, so for batches of 32+ the floor is at most ~3% pessimistic. Needs B >= 2.
  """
  b = full_target.shape[0]
  if b < 2:
    raise ValueError(f"the position-only floor needs >= 2 examples per (micro-)batch, got {b}")
  full_target = jax.lax.stop_gradient(full_target)
  loo_mean = (full_target.sum(0, keepdims=True) - full_target) / (b - 1)  # (B, N, D)
  gather = jax.vmap(lambda f, i: f[i])
  _, per_level = levels_loss([(gather(loo_mean, idx), gather(full_target, idx), idx, valid, pool)], grid, (1.0,), kind)
  return per_level[0]


def per_dim_std(x, valid=None):
  """Mean over channels of the per-channel std over all (valid) tokens: the collapse diagnostic."""
  x = x.reshape(-1, x.shape[-1])
  w = jnp.ones(x.shape[:1], x.dtype) if valid is None else valid.reshape(-1).astype(x.dtype)
  n = jnp.maximum(w.sum(), 1.0)
  mean = (x * w[:, None]).sum(0) / n
  var = (jnp.square(x - mean) * w[:, None]).sum(0) / n
  return jnp.sqrt(var + 1e-12).mean()
