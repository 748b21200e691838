"""The H-JEPA hierarchy, defined on the patch grid.

Level k compares predictions and targets averaged over 2^k x 2^k cells of the patch grid. For one
example and target block with valid positions T (a set of (row, col)), cell c at level k is
    C_k(c) = { p in T : (row_p // 2^k, col_p // 2^k) = c },
    P_k(c) = mean_{p in C_k(c)} pred_p,      Y_k(c) = mean_{p in C_k(c)} target_p,
and only cells with |C_k(c)| > 0 are compared. Level 0 is the I-JEPA patch-level loss. This is
the scatter of predictions into a dense (H, W) grid with a validity mask followed by masked
average pooling, computed as one segment sum so shapes stay static (cells per level are fixed).
"""

import math

import jax
import jax.numpy as jnp


def num_cells(grid, level):
  cell = 2**level
  return math.ceil(grid[0] / cell) * math.ceil(grid[1] / cell)


def pool_to_level(values, idx, valid, grid, level):
  """Masked average of token values over 2^level cells.

  values: (..., K, D) features at grid indices idx (..., K) with validity valid (..., K).
  Returns pooled (..., C, D) and cell validity (..., C), C = num_cells(grid, level).
  """
  cell = 2**level
  cells_w = math.ceil(grid[1] / cell)
  c = num_cells(grid, level)
  cell_id = (idx // grid[1] // cell) * cells_w + (idx % grid[1]) // cell
  onehot = jax.nn.one_hot(cell_id, c, dtype=values.dtype) * valid[..., None].astype(values.dtype)  # (..., K, C)
  sums = jnp.einsum("...kc,...kd->...cd", onehot, values, precision=jax.lax.Precision.HIGHEST)
  counts = onehot.sum(-2)
  pooled = sums / jnp.maximum(counts, 1.0)[..., None]
  return pooled, counts > 0
