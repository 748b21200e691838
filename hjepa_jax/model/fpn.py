"""Top-down Feature Pyramid over the H-JEPA hierarchy levels.

Level 0 holds predicted tokens (B, M, K, D) at grid indices idx (B, M, K); level k >= 1 holds
masked averages over 2^k x 2^k cells (B, M, C_k, D), C_k = hierarchy.num_cells(grid, k), in the
row-major cell layout of hierarchy.pool_to_level. Each level is refined with the coarser context
above it (FPN, Lin et al. 2017): coarse cells see a larger part of the block, fine ones keep detail.
Every cell's parent contains its tokens, so a valid cell only ever reads a valid parent; empty
cells (zeros from pooling) produce outputs that the loss masks out. All gathers use static index
arrays or take_along_axis, so shapes are static and one compile serves every mask draw.
"""

import math
from typing import Any, Optional

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from hjepa_jax import hierarchy

FUSIONS = ("add", "concat")


def cell_ids(idx, grid, level=1):
  """Cell index at `level` of each token's grid index idx (same formula as pool_to_level)."""
  cell = 2**level
  cells_w = math.ceil(grid[1] / cell)
  return (idx // grid[1] // cell) * cells_w + (idx % grid[1]) // cell


def parent_cells(grid, level):
  """Static (C_level,) int32: for each cell of `level` >= 1, its parent cell at level + 1."""
  if level < 1:
    raise ValueError(f"parent_cells needs level >= 1 (level 0 tokens use cell_ids), got {level}")
  rows, cols = (math.ceil(n / 2**level) for n in grid)
  r, c = np.divmod(np.arange(rows * cols), cols)
  return ((r // 2) * math.ceil(cols / 2) + c // 2).astype(np.int32)


class FPN(nn.Module):
  """__call__(levels, idx, grid) -> refined levels, same shapes with last dim out_dim (float32).

  levels: list of num_levels arrays as described in the module docstring. out_dim=None keeps the
  input width, so refined predictions can be regressed onto the same targets. dtype is the compute
  dtype; params stay float32.
  """

  num_levels: int
  feature_dim: int
  fusion: str  # one of FUSIONS (checked at start-up: model.fpn.fusion)
  out_dim: Optional[int] = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, levels, idx, grid):
    if len(levels) != self.num_levels:
      raise ValueError(f"FPN built for {self.num_levels} levels got {len(levels)}")
    for k, p in enumerate(levels[1:], start=1):
      if p.shape[-2] != hierarchy.num_cells(grid, k):
        raise ValueError(f"level {k} has {p.shape[-2]} cells, grid {grid} needs {hierarchy.num_cells(grid, k)}")
    dt = jnp.dtype(self.dtype)
    out_dim = self.out_dim or levels[0].shape[-1]

    def dense(features, name):
      return nn.Dense(features, dtype=dt, param_dtype=jnp.float32, name=name)

    top = self.num_levels - 1
    t = dense(self.feature_dim, f"lateral_{top}")(levels[top])
    refined = [t]
    for k in range(top - 1, -1, -1):
      if k == 0:
        above = jnp.take_along_axis(t, cell_ids(idx, grid, 1)[..., None], axis=-2)
      else:
        above = jnp.take(t, jnp.asarray(parent_cells(grid, k)), axis=-2)
      lateral = dense(self.feature_dim, f"lateral_{k}")(levels[k])
      if self.fusion == "add":
        t = lateral + above
      else:
        t = dense(self.feature_dim, f"fuse_{k}")(jnp.concatenate([lateral, above.astype(lateral.dtype)], -1))
      refined.append(t)
    refined = refined[::-1]
    return [dense(out_dim, f"out_{k}")(t).astype(jnp.float32) for k, t in enumerate(refined)]
