"""Frozen features: avgpool, last-N blocks, hierarchy-level cells; one compile per batch shape."""

import jax
import numpy as np

from hjepa_jax.evaluation.features import extract_features, level_features, make_feature_fn
from tests._core import synthetic_images, tiny_model


def test_level_features_are_cell_means_in_grid_order():
  grid = (4, 4)
  tokens = np.arange(16 * 2, dtype=np.float32).reshape(1, 16, 2)
  out = np.asarray(level_features(tokens, grid, 1)).reshape(4, 2)
  t = tokens[0].reshape(4, 4, 2)
  want = np.stack([t[r : r + 2, c : c + 2].mean((0, 1)) for r in (0, 2) for c in (0, 2)])
  np.testing.assert_allclose(out, want)
  # The coarsest level of a 4x4 grid is one cell: the plain average pool.
  np.testing.assert_allclose(np.asarray(level_features(tokens, grid, 2))[0], tokens[0].mean(0))


def test_feature_kinds_shapes_and_batching():
  model = tiny_model(depth=2)
  params = model.init(jax.random.PRNGKey(0))["encoder"]
  fn = make_feature_fn(model, kinds=("avgpool", "last4", "level1", "level2"))
  images = synthetic_images(10)
  feats = extract_features(fn, params, images, batch_size=4)  # 4 + 4 + 2 (padded)
  d = model.encoder.width
  assert {k: v.shape for k, v in feats.items()} == {
    "avgpool": (10, d),
    "last4": (10, 2 * d),
    "level1": (10, 16 * d),
    "level2": (10, 4 * d),
  }
  # Cell means average back to the global average pool; padding never leaks into real rows.
  np.testing.assert_allclose(feats["level1"].reshape(10, 16, d).mean(1), feats["avgpool"], atol=1e-5)
  alone = extract_features(fn, params, images[8:], batch_size=4)
  np.testing.assert_allclose(alone["avgpool"], feats["avgpool"][8:], atol=1e-5)
  assert fn._cache_size() == 1
