"""Linear probe: learns separable data, is at chance on random labels, selects by holdout, is deterministic."""

import json

import numpy as np
import pytest

from hjepa_jax.evaluation.linear_probe import linear_probe

# One shape/config for every test so the jitted sweep compiles once per session.
N_TRAIN, N_TEST, DIM, CLASSES = 800, 400, 16, 4
KW = dict(num_classes=CLASSES, lrs=(1e-3, 1e-2), weight_decays=(0.0, 0.05), epochs=10, batch_size=64)


def _gaussians(seed, sep):
  rng = np.random.default_rng(seed)
  means = rng.normal(size=(CLASSES, DIM)) * sep
  y = rng.integers(0, CLASSES, size=N_TRAIN + N_TEST)
  x = (means[y] + rng.normal(size=(len(y), DIM))).astype(np.float32)
  return x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:]


def test_separable_features_reach_full_accuracy():
  res = linear_probe(*_gaussians(0, sep=3.0), **KW)
  assert res["top1"] >= 0.98
  assert res["holdout_top1"] >= 0.98
  json.dumps(res)  # plain python types only


def test_feature_scale_does_not_matter():
  # Standardisation makes the probe insensitive to the backbone's feature scale.
  tx, ty, vx, vy = _gaussians(0, sep=3.0)
  res = linear_probe(tx * 1000.0 + 50.0, ty, vx * 1000.0 + 50.0, vy, **KW)
  assert res["top1"] >= 0.98


def test_random_labels_give_chance_accuracy():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(N_TRAIN + N_TEST, DIM)).astype(np.float32)
  y = rng.integers(0, CLASSES, size=N_TRAIN + N_TEST)
  res = linear_probe(x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:], **KW)
  assert abs(res["top1"] - 1.0 / CLASSES) <= 0.1  # chance 0.25, std ~0.02 with 400 test points


def test_sweep_bookkeeping():
  res = linear_probe(*_gaussians(2, sep=0.7), **KW)  # harder data so settings differ
  sweep = res["sweep"]
  assert [(s["lr"], s["weight_decay"]) for s in sweep] == [(1e-3, 0.0), (1e-3, 0.05), (1e-2, 0.0), (1e-2, 0.05)]
  best = max(sweep, key=lambda s: s["holdout_top1"])
  assert res["holdout_top1"] == best["holdout_top1"]
  assert (res["best_lr"], res["best_weight_decay"]) == (best["lr"], best["weight_decay"])
  for s in sweep:
    assert 0.0 <= s["holdout_top1"] <= 1.0
    assert s["holdout_top1"] * round(N_TRAIN * 0.1) == pytest.approx(round(s["holdout_top1"] * 80))


def test_deterministic_given_seed():
  data = _gaussians(3, sep=0.7)
  a = linear_probe(*data, seed=5, **KW)
  b = linear_probe(*data, seed=5, **KW)
  assert a == b


def test_single_setting_without_holdout():
  res = linear_probe(
    *_gaussians(0, sep=3.0),
    num_classes=CLASSES,
    lrs=(1e-2,),
    weight_decays=(0.0,),
    epochs=10,
    batch_size=64,
    holdout_fraction=0.0,
  )
  assert res["holdout_top1"] is None and res["sweep"] == []
  assert res["top1"] >= 0.98
  with pytest.raises(ValueError):
    linear_probe(*_gaussians(0, sep=3.0), **KW, holdout_fraction=0.0)
