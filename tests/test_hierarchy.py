"""The hierarchy on the patch grid: a hand-computed example."""

import jax.numpy as jnp
import numpy as np

from hjepa_jax import hierarchy, losses


def test_hand_computed_two_and_three_level_example():
  # 4x4 grid, one example, one target block covering rows 0-1, cols 1-3 (indices 1,2,3,5,6,7)
  # plus two padded slots holding garbage that must be ignored. Prediction at index p is p, target 0.
  idx = jnp.array([[[1, 2, 3, 5, 6, 7, 0, 0]]])
  valid = jnp.array([[[True] * 6 + [False] * 2]])
  pred = jnp.where(valid, idx, 1000).astype(jnp.float32)[..., None]  # (1, 1, 8, 1)
  target = jnp.zeros_like(pred)
  # Level 0: mean of p^2 over the 6 patches = (1+4+9+25+36+49)/6.
  level0 = 124 / 6
  # Level 1 (2x2 cells): cell (0,0) holds {1,5} -> mean 3; cell (0,1) holds {2,3,6,7} -> mean 4.5.
  level1 = (3.0**2 + 4.5**2) / 2
  # Level 2 (4x4 cell): one cell, mean 4.
  level2 = 16.0
  total, per_level = losses.hierarchical_loss(pred, target, idx, valid, (4, 4), (1.0, 0.5, 0.25), kind="mse")
  np.testing.assert_allclose(per_level[:, 0], [level0, level1, level2], rtol=1e-6)
  np.testing.assert_allclose(total[0], level0 + 0.5 * level1 + 0.25 * level2, rtol=1e-6)


def test_pooling_on_a_grid_not_divisible_by_the_cell():
  # 5x5 grid at level 2: 2x2 cells, the last row/column forms partial cells.
  assert hierarchy.num_cells((5, 5), 2) == 4
  idx = jnp.array([[0, 4, 20, 24, 12]])
  vals = jnp.array([[1.0, 2.0, 3.0, 4.0, 5.0]])[..., None]
  pooled, cell_valid = hierarchy.pool_to_level(vals, idx, jnp.ones((1, 5), bool), (5, 5), 2)
  # idx 0 and 12 (row 2, col 2) share cell 0; 4 -> cell 1; 20 -> cell 2; 24 -> cell 3.
  np.testing.assert_allclose(pooled[0, :, 0], [3.0, 2.0, 3.0, 4.0])
  assert bool(cell_valid.all())


def test_smooth_l1_matches_definition():
  x = jnp.array([0.0, 0.5, 2.0, -3.0])
  np.testing.assert_allclose(losses.smooth_l1(x, jnp.zeros(4)), [0.0, 0.125, 1.5, 2.5])


def test_target_layer_norm_has_no_affine_and_unit_stats():
  x = jnp.arange(12.0).reshape(3, 4) ** 2
  y = losses.layer_norm(x)
  np.testing.assert_allclose(y.mean(-1), 0, atol=1e-5)
  np.testing.assert_allclose(y.std(-1), 1, atol=1e-3)
