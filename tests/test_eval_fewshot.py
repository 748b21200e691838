"""Few-shot: episodic nearest-centroid and big_vision-style ridge regression."""

import json
import math

import numpy as np
import pytest

from hjepa_jax.evaluation import fewshot_episodes, ridge_fewshot


def _gaussians(seed, per_class, num_classes, dim, sep):
  rng = np.random.default_rng(seed)
  means = rng.normal(size=(num_classes, dim)) * sep
  y = np.repeat(np.arange(num_classes), per_class)
  rng.shuffle(y)
  return (means[y] + rng.normal(size=(len(y), dim))).astype(np.float32), y


def test_episodes_on_separable_features():
  x, y = _gaussians(0, per_class=30, num_classes=10, dim=16, sep=4.0)
  res = fewshot_episodes(x, y, n_way=5, k_shot=1, n_query=15, num_episodes=600, seed=0)
  assert res["mean"] >= 0.98
  assert 0.0 <= res["ci95"] <= 0.01
  assert (res["n_way"], res["k_shot"], res["num_episodes"]) == (5, 1, 600)
  json.dumps(res)


def test_episodes_on_random_labels_are_at_chance():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(300, 16)).astype(np.float32)
  y = np.repeat(np.arange(10), 30)  # same class layout as above: no recompilation
  rng.shuffle(y)
  res = fewshot_episodes(x, y, n_way=5, k_shot=1, n_query=15, num_episodes=600, seed=0)
  assert abs(res["mean"] - 1.0 / 5) <= 0.03
  # ci95 follows its definition: 1.96 * std / sqrt(E), with per-episode std <= 0.5
  assert 0.0 < res["ci95"] <= 1.96 * 0.5 / math.sqrt(600)


def test_episodes_clip_n_way_and_are_seeded():
  rng = np.random.default_rng(2)
  # Classes 0-2 have 30 examples; classes 3-4 only 10 (< k_shot + n_query = 16).
  y = np.concatenate([np.repeat([0, 1, 2], 30), np.repeat([3, 4], 10)])
  x = rng.normal(size=(len(y), 8)).astype(np.float32) + 3.0 * np.eye(8, dtype=np.float32)[y]
  res = fewshot_episodes(x, y, n_way=10, k_shot=1, n_query=15, num_episodes=100, seed=3)
  assert res["n_way"] == 3
  assert res == fewshot_episodes(x, y, n_way=10, k_shot=1, n_query=15, num_episodes=100, seed=3)
  with pytest.raises(ValueError):  # only one class has >= 16 examples
    fewshot_episodes(x[:40], y[:40], n_way=5, k_shot=1, n_query=15)


def test_ridge_fewshot_separable():
  x, y = _gaussians(3, per_class=60, num_classes=10, dim=32, sep=3.0)
  res = ridge_fewshot(x[:400], y[:400], x[400:], y[400:], num_classes=10, shots=(1, 5, 10), seed=0)
  assert list(res) == ["fewshot_ridge_1shot", "fewshot_ridge_5shot", "fewshot_ridge_10shot"]
  for acc in res.values():
    assert acc >= 0.98
  assert ridge_fewshot(x[:400], y[:400], x[400:], y[400:], num_classes=10, shots=(1, 5, 10), seed=0) == res


def test_ridge_fewshot_random_labels_and_more_shots_help():
  rng = np.random.default_rng(4)
  x = rng.normal(size=(600, 32)).astype(np.float32)
  y = rng.integers(0, 10, size=600)
  res = ridge_fewshot(x[:400], y[:400], x[400:], y[400:], num_classes=10, shots=(1, 5, 10))
  for acc in res.values():
    assert abs(acc - 0.1) <= 0.08  # chance 0.1, std ~0.02 with 200 test points
  # Harder but learnable data: accuracy grows with the number of shots.
  x, y = _gaussians(5, per_class=60, num_classes=10, dim=32, sep=0.5)
  res = ridge_fewshot(x[:400], y[:400], x[400:], y[400:], num_classes=10, shots=(1, 5, 10))
  assert res["fewshot_ridge_1shot"] < res["fewshot_ridge_10shot"]
