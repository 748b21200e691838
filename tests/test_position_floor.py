"""The position-only floor (losses.position_floor) on cases whose answer is known, and in train_step's metrics.

Targets that depend only on the position are predicted exactly from positions: floor 0. Targets that
are i.i.d. noise around a per-position pattern leave the noise: under MSE the floor is the noise
variance times B/(B-1) (the leave-one-out mean's own noise), at every level the mean over a cell of
the per-token noise, so level k's floor shrinks with the cell size.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hjepa_jax import losses
from hjepa_jax.masks import MaskSpec, sample_masks
from tests._core import synthetic_images, tiny_setup

GRID = (8, 8)
WEIGHTS = (1.0, 0.5, 0.25)
B, D = 32, 64
SPEC = MaskSpec(
  grid=GRID,
  num_targets=4,
  target_scale=(0.15, 0.2),
  target_aspect=(0.75, 1.5),
  context_scale=(0.85, 1.0),
  context_aspect=(1.0, 1.0),
  min_context=4,
  context_capacity=64,
  target_capacity=16,
)


def _floor(full, kind="mse"):
  masks = sample_masks(jax.random.PRNGKey(0), full.shape[0], SPEC)
  fn = jax.jit(lambda f: losses.position_floor(f, masks["target_idx"], masks["target_valid"], GRID, WEIGHTS, kind))
  return np.asarray(fn(full)).mean(1)  # (levels,)


def _pattern(seed=0):
  return jax.random.normal(jax.random.PRNGKey(seed), (1, GRID[0] * GRID[1], D))


@pytest.mark.parametrize("kind", ["mse", "smooth_l1"])
def test_targets_that_depend_only_on_position_have_floor_zero(kind):
  full = jnp.broadcast_to(_pattern(), (B, GRID[0] * GRID[1], D))
  np.testing.assert_allclose(_floor(full, kind), 0.0, atol=1e-10)


def test_content_noise_sets_the_floor_to_its_variance():
  sigma = 0.5
  noise = sigma * jax.random.normal(jax.random.PRNGKey(1), (B, GRID[0] * GRID[1], D))
  floor = _floor(_pattern() + noise)
  np.testing.assert_allclose(floor[0], sigma**2 * B / (B - 1), rtol=0.03)
  assert floor[0] > floor[1] > floor[2] > 0  # cells average the noise of their tokens away
  assert floor[1] < 0.6 * floor[0]  # a level-1 cell holds up to 4 tokens of a block


def test_train_step_logs_the_floor_next_to_the_loss():
  _, _, state, step_fn = tiny_setup()
  _, metrics = jax.jit(step_fn)(state, {"image": synthetic_images(8)}, jax.random.PRNGKey(0))
  for i in (0, 1):
    assert np.isfinite(metrics[f"pos_floor_level_{i}"]) and float(metrics[f"pos_floor_level_{i}"]) > 0
  expected = float(metrics["pos_floor_level_0"]) + 0.5 * float(metrics["pos_floor_level_1"])
  np.testing.assert_allclose(float(metrics["pos_floor"]), expected, rtol=1e-5)
