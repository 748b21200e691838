"""I-JEPA multi-block masking with static shapes, sampled on device from (rng, example index).

Shapes are fixed per config so `train_step` compiles once:
  * Target blocks are rectangles h x w drawn uniformly from the integer shapes of the grid whose area
    fraction lies in `target_scale` and whose aspect h/w lies in `target_aspect`. Every block is
    stored as `target_capacity` = max allowed area indices in raster order within the block, padded
    with `target_valid=False` (no rounding pushes a block outside the configured ranges).
  * The context block is drawn the same way from `context_scale`/`context_aspect`; the context is that
    block minus the union of all target blocks. Its tokens are stored in `context_capacity` slots, an
    upper bound on the context size (times `context_fraction` <= 1 to save compute: samples with more
    context tokens keep a random subset, the static-shape version of I-JEPA trimming each batch to
    its smallest context). Padding is marked `context_valid=False` and is never attended to.
  * Top-left corners are uniform over all H-h+1 rows and W-w+1 columns, so blocks touch the last
    row/column as often as the first (no off-by-one bias).
  * Samples whose context has fewer than `min_context` tokens are redrawn (bounded retries).
Masks depend only on (rng, example index), so a resumed run and a gradient-accumulated batch draw
exactly the same masks.
"""

import dataclasses
import math

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
  context_fraction: float

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
  def target_capacity(self):
    return int(self.target_shapes.prod(1).max())

  @property
  def context_capacity(self):
    bound = min(int(self.context_shapes.prod(1).max()), self.num_patches - int(self.target_shapes.prod(1).min()))
    return max(self.min_context, int(math.ceil(self.context_fraction * bound)))


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


def _block_indices(h, w, top, left, grid, capacity):
  """Raster-order indices of a block padded to `capacity`, and their validity."""
  k = jnp.arange(capacity)
  valid = k < h * w
  idx = (top + k // w) * grid[1] + left + k % w
  return jnp.where(valid, idx, top * grid[1] + left).astype(jnp.int32), valid


def _draw(key, spec):
  """One draw of an example's masks (see module docstring); one PRNG call keeps compiles short."""
  grid, n, m = spec.grid, spec.num_patches, spec.num_targets
  u = jax.random.uniform(key, (3 * m + 3 + n,))
  blocks = jax.vmap(lambda v: _block(v, spec.target_shapes, grid))(u[: 3 * m].reshape(m, 3))
  tgt_idx, tgt_valid = jax.vmap(lambda *b: _block_indices(*b, grid, spec.target_capacity))(*blocks)
  union = jax.vmap(lambda *b: _block_mask(*b, grid))(*blocks).any(0)
  ctx = _block_mask(*_block(u[3 * m : 3 * m + 3], spec.context_shapes, grid), grid) & ~union
  # Valid positions first (random order among them), keep the first `capacity`, sort by position.
  chosen = jnp.argsort(jnp.where(ctx, u[3 * m + 3 :], 2.0))[: spec.context_capacity]
  chosen_valid = ctx[chosen]
  order = jnp.argsort(jnp.where(chosen_valid, chosen, chosen + n))
  return dict(
    context_idx=chosen[order].astype(jnp.int32),
    context_valid=chosen_valid[order],
    target_idx=tgt_idx,
    target_valid=tgt_valid,
  )


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


def sample_masks(rng, batch_size, spec, offset=0):
  """Masks for examples offset..offset+batch_size-1; each depends only on (rng, its index)."""
  keys = jax.vmap(lambda i: jax.random.fold_in(rng, i))(jnp.arange(batch_size) + offset)
  return jax.vmap(lambda k: _sample_one(k, spec))(keys)
