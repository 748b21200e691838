"""I-JEPA multi-block masking with static shapes, sampled on device from (rng, example index).

Shapes are fixed per config so `train_step` compiles once:
  * Target blocks are rectangles h x w drawn uniformly from the integer shapes of the grid whose area
    fraction lies in `target_scale` and whose aspect h/w lies in `target_aspect` (no rounding pushes
    a block outside the configured ranges).
  * The context block is drawn the same way from `context_scale`/`context_aspect`; the context is that
    block minus the union of all target blocks.
  * Each block's tokens are stored in `target_capacity` slots and the context's in `context_capacity`
    slots, sorted by position, padded with `*_valid=False` (padding is never attended to and never
    enters the loss). A block or context with more tokens than its capacity keeps a uniformly random
    subset: the static-shape version of I-JEPA trimming every context of a batch to the batch's
    smallest. `capacities` picks the capacities that make the expected work match that trimming.
  * Top-left corners are uniform over all H-h+1 rows and W-w+1 columns, so blocks touch the last
    row/column as often as the first (no off-by-one bias).
  * Samples whose context has fewer than `min_context` tokens are redrawn (bounded retries).
Masks depend only on (rng, example index), so a resumed run and a gradient-accumulated batch draw
exactly the same masks.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np


MAX_TRIES = 20  # redraws of an example whose context is smaller than min_context


def block_shapes(grid_hw, scale, aspect):
  """All (h, w) on the grid with h*w/N in `scale` and h/w in `aspect` (inclusive, 1e-9 slack); may be empty."""
  gh, gw = grid_hw
  n = gh * gw
  eps = 1e-9
  shapes = [
    (h, w)
    for h in range(1, gh + 1)
    for w in range(1, gw + 1)
    if scale[0] - eps <= h * w / n <= scale[1] + eps and aspect[0] - eps <= h / w <= aspect[1] + eps
  ]
  return np.asarray(shapes, np.int32).reshape(-1, 2)


@dataclasses.dataclass(frozen=True)
class MaskSpec:
  """Static multi-block masking parameters for one patch grid (experiment.mask_spec checks the ranges)."""

  grid: tuple
  num_targets: int
  target_scale: tuple
  target_aspect: tuple
  context_scale: tuple
  context_aspect: tuple
  min_context: int
  context_capacity: int  # token slots per context (<= context_bound); see `capacities`
  target_capacity: int  # token slots per target block (<= target_bound)

  @property
  def num_patches(self):
    return self.grid[0] * self.grid[1]

  @property
  def target_shapes(self):
    return block_shapes(self.grid, self.target_scale, self.target_aspect)

  @property
  def context_shapes(self):
    return block_shapes(self.grid, self.context_scale, self.context_aspect)

  @property
  def target_bound(self):
    """The largest target block: a capacity that never drops a token."""
    return int(self.target_shapes.prod(1).max())

  @property
  def context_bound(self):
    """An upper bound on the context size: a capacity that never drops a token."""
    return min(int(self.context_shapes.prod(1).max()), self.num_patches - int(self.target_shapes.prod(1).min()))


def _block(u, shapes, grid):
  """Rectangle (h, w, top, left) from `shapes` and three uniforms u in [0, 1)."""
  pick = lambda x, n: jnp.minimum((x * n).astype(jnp.int32), n - 1)
  hw = jnp.asarray(shapes)[pick(u[0], len(shapes))]
  h, w = hw[0], hw[1]
  return h, w, pick(u[1], grid[0] - h + 1), pick(u[2], grid[1] - w + 1)


def _block_mask(h, w, top, left, grid):
  rows = jnp.arange(grid[0])[:, None]
  cols = jnp.arange(grid[1])[None, :]
  return ((rows >= top) & (rows < top + h) & (cols >= left) & (cols < left + w)).reshape(-1)


def _subset(member, u, capacity):
  """Up to `capacity` grid indices of the boolean grid mask `member`, a uniformly random subset when
  there are more, sorted by position with padding last; returns (indices, validity)."""
  n = member.shape[0]
  chosen = jnp.argsort(jnp.where(member, u, 2.0))[:capacity]  # members first, in random order
  valid = member[chosen]
  order = jnp.argsort(jnp.where(valid, chosen, chosen + n))
  return chosen[order].astype(jnp.int32), valid[order]


def _draw(key, spec):
  """One draw of an example's masks (see module docstring); one PRNG call keeps compiles short."""
  grid, n, m = spec.grid, spec.num_patches, spec.num_targets
  u = jax.random.uniform(key, (3 * m + 3 + (m + 1) * n,))
  blocks = jax.vmap(lambda v: _block(v, spec.target_shapes, grid))(u[: 3 * m].reshape(m, 3))
  member = jax.vmap(lambda *b: _block_mask(*b, grid))(*blocks)  # (m, n)
  ctx = _block_mask(*_block(u[3 * m : 3 * m + 3], spec.context_shapes, grid), grid) & ~member.any(0)
  prio = u[3 * m + 3 :].reshape(m + 1, n)
  tgt_idx, tgt_valid = jax.vmap(lambda b, p: _subset(b, p, spec.target_capacity))(member, prio[1:])
  ctx_idx, ctx_valid = _subset(ctx, prio[0], spec.context_capacity)
  return dict(context_idx=ctx_idx, context_valid=ctx_valid, target_idx=tgt_idx, target_valid=tgt_valid)


def _sample_one(key, spec):
  """Draws until the context has >= min_context tokens (at most max_tries draws)."""

  def not_done(carry):
    tries, _, masks = carry
    return (tries < MAX_TRIES) & (masks["context_valid"].sum() < spec.min_context)

  def body(carry):
    tries, key, _ = carry
    key, sub = jax.random.split(key)
    return tries + 1, key, _draw(sub, spec)

  empty = jax.eval_shape(lambda: _draw(key, spec))
  empty = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), empty)
  _, _, masks = jax.lax.while_loop(not_done, body, (jnp.int32(0), key, empty))
  return masks


def capacities(spec, batch_size, samples=4096, seed=0):
  """(context, target) capacities for `batch_size`: each the 1/(batch_size+1) quantile of its size.

  That quantile is the expected minimum of `batch_size` draws, so the static capacity computes, on
  average, what I-JEPA computes when it trims every context of a batch to the batch's smallest (and
  its target blocks to their smallest). Estimated once from `samples` untrimmed draws of `spec`.
  """
  exact = dataclasses.replace(spec, context_capacity=spec.context_bound, target_capacity=spec.target_bound)
  ctx, tgt = _untrimmed_sizes(exact, samples, seed)
  q = 1.0 / (batch_size + 1)
  c = max(spec.min_context, int(np.quantile(ctx, q, method="lower")))
  return c, int(np.quantile(tgt, q, method="lower"))


@functools.lru_cache(maxsize=32)
def _untrimmed_sizes(exact_spec, samples, seed):
  out = jax.jit(lambda r: sample_masks(r, samples, exact_spec))(jax.random.PRNGKey(seed))
  return np.asarray(out["context_valid"].sum(-1)), np.asarray(out["target_valid"].sum(-1)).reshape(-1)


def sample_masks(rng, batch_size, spec, offset=0):
  """Masks for examples offset..offset+batch_size-1; each depends only on (rng, its index)."""
  keys = jax.vmap(lambda i: jax.random.fold_in(rng, i))(jnp.arange(batch_size) + offset)
  return jax.vmap(lambda k: _sample_one(k, spec))(keys)
