"""Weighted k-NN: accuracy on easy/impossible data, exact match with a numpy reference, chunk invariance."""

import numpy as np
import pytest

from hjepa_jax.evaluation import knn_classify, knn_predict


def _gaussians(rng, n, num_classes, dim, sep):
  means = rng.normal(size=(num_classes, dim)) * sep
  y = np.arange(n) % num_classes
  rng.shuffle(y)
  return (means[y] + rng.normal(size=(n, dim))).astype(np.float32), y


def _numpy_knn(train, train_y, test, k, num_classes, temperature):
  """Brute-force reference: full similarity matrix, argsort, weighted votes."""
  train = train / np.linalg.norm(train, axis=1, keepdims=True)
  test = test / np.linalg.norm(test, axis=1, keepdims=True)
  sim = test @ train.T
  k = min(k, train.shape[0])
  preds = []
  for row in sim:
    nn = np.argsort(-row, kind="stable")[:k]
    w = np.exp((row[nn] - row[nn[0]]) / temperature)
    votes = np.zeros(num_classes)
    np.add.at(votes, train_y[nn], w)
    preds.append(int(np.argmax(votes)))
  return np.array(preds)


def test_separable_features_are_classified_perfectly():
  rng = np.random.default_rng(0)
  x, y = _gaussians(rng, 700, num_classes=5, dim=16, sep=4.0)
  res = knn_classify(x[:500], y[:500], x[500:], y[500:], num_classes=5, ks=(1, 5, 20, 200))
  assert set(res) == {"knn_top1_k1", "knn_top1_k5", "knn_top1_k20", "knn_top1_k200"}
  for acc in res.values():
    assert isinstance(acc, float)
    assert acc >= 0.98


def test_random_labels_give_chance_accuracy():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(700, 16)).astype(np.float32)
  y = rng.integers(0, 5, size=700)
  res = knn_classify(x[:500], y[:500], x[500:], y[500:], num_classes=5, ks=(1, 5, 20, 200))
  for acc in res.values():
    assert 0.2 - 0.12 <= acc <= 0.2 + 0.12  # chance 0.2, std ~0.03 with 200 queries


@pytest.mark.parametrize("temperature", [0.07, 0.5])
def test_matches_numpy_bruteforce_with_ragged_chunks(temperature):
  rng = np.random.default_rng(2)
  train = rng.normal(size=(50, 8)).astype(np.float32)
  train_y = rng.integers(0, 4, size=50)
  test = rng.normal(size=(37, 8)).astype(np.float32)
  ks = [1, 3, 7, 60]  # list input; 60 > 50 train points is clipped to 50
  # chunk sizes that divide neither the test (37) nor the train (50) set
  got = knn_predict(
    train, train_y, test, num_classes=4, ks=ks, temperature=temperature, chunk_size=10, train_chunk_size=16
  )
  whole = knn_predict(
    train, train_y, test, num_classes=4, ks=ks, temperature=temperature, chunk_size=1024, train_chunk_size=None
  )
  assert sorted(got) == ks
  for k in ks:
    ref = _numpy_knn(train, train_y, test, k, 4, temperature)
    np.testing.assert_array_equal(got[k], ref)
    np.testing.assert_array_equal(whole[k], ref)
  # k >= train size: every train point votes, so 60 and 50 agree.
  np.testing.assert_array_equal(got[60], _numpy_knn(train, train_y, test, 50, 4, temperature))


def test_accuracy_matches_predictions_and_key_names():
  rng = np.random.default_rng(3)
  train = rng.normal(size=(50, 8)).astype(np.float32)
  train_y = rng.integers(0, 4, size=50)
  test = rng.normal(size=(37, 8)).astype(np.float32)
  test_y = rng.integers(0, 4, size=37)
  res = knn_classify(train, train_y, test, test_y, num_classes=4, ks=[1, 3, 7, 60], chunk_size=10, train_chunk_size=16)
  assert list(res) == ["knn_top1_k1", "knn_top1_k3", "knn_top1_k7", "knn_top1_k60"]
  for k in (1, 3, 7, 60):
    ref = _numpy_knn(train, train_y, test, k, 4, 0.07)
    assert res[f"knn_top1_k{k}"] == pytest.approx(np.mean(ref == test_y))


def test_rejects_bad_ks():
  x = np.ones((4, 3), np.float32)
  with pytest.raises(ValueError):
    knn_classify(x, np.zeros(4), x, np.zeros(4), num_classes=2, ks=(0,))
