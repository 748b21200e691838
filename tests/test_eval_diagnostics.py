"""Collapse diagnostics: RankMe effective rank, feature std/entropy, collapse flag, hierarchy CKA."""

import itertools
import json

import numpy as np
import pytest

from hjepa_jax.evaluation import (
  collapse_report,
  effective_rank,
  feature_entropy,
  feature_std,
  rank_ratio,
)


def test_effective_rank_of_identity_is_full():
  x = np.eye(64, dtype=np.float32)
  assert effective_rank(x) == pytest.approx(64.0, rel=1e-3)
  assert rank_ratio(x) == pytest.approx(1.0, rel=1e-3)


def test_effective_rank_of_orthonormal_rows_is_their_count():
  q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(64, 64)))
  x = (q[:32] * 3.0).astype(np.float32)  # 32 orthonormal rows, scaled: rank is scale-free
  assert effective_rank(x) == pytest.approx(32.0, rel=1e-3)
  assert rank_ratio(x) == pytest.approx(1.0, rel=1e-3)


def test_effective_rank_of_rank_one_is_one():
  rng = np.random.default_rng(1)
  x = np.outer(rng.normal(size=200), rng.normal(size=64)).astype(np.float32)
  assert effective_rank(x) == pytest.approx(1.0, abs=1e-2)


def test_centering_option_ignores_a_constant_offset():
  rng = np.random.default_rng(2)
  low_rank = rng.normal(size=(300, 3)) @ rng.normal(size=(3, 32))
  x = (low_rank + 100.0).astype(np.float32)  # huge shared offset dominates the uncentred spectrum
  assert effective_rank(x) < 1.5
  assert 2.0 < effective_rank(x, center=True) <= 3.0 + 1e-3


def test_feature_std_and_collapse_flag():
  rng = np.random.default_rng(3)
  healthy = rng.normal(size=(256, 128)).astype(np.float32)
  constant = np.full((256, 128), 0.7, np.float32)
  rank_one = np.outer(rng.normal(size=256), rng.normal(size=128)).astype(np.float32)

  assert feature_std(healthy) == pytest.approx(1.0, abs=0.05)
  assert feature_std(constant) == pytest.approx(0.0, abs=1e-6)

  rep = collapse_report(healthy)
  assert rep["collapsed"] is False
  assert rep["rank_ratio"] > 0.5
  json.dumps(rep)  # plain python types only
  assert set(rep) >= {
    "feature_std",
    "effective_rank",
    "rank_ratio",
    "feature_entropy",
    "collapsed",
    "std_threshold",
    "rank_ratio_threshold",
  }

  assert collapse_report(constant)["collapsed"] is True
  # Dimensional collapse: large std but rank 1 -> caught by the rank ratio.
  rep = collapse_report(rank_one)
  assert rep["feature_std"] > 0.1
  assert rep["rank_ratio"] < 0.01
  assert rep["collapsed"] is True


def test_feature_entropy_definition():
  rng = np.random.default_rng(4)
  n, d = 2048, 32
  assert feature_entropy(np.full((n, d), 3.0, np.float32)) == 0.0
  uniform = feature_entropy(rng.uniform(size=(n, d)).astype(np.float32))
  gaussian = feature_entropy(rng.normal(size=(n, d)).astype(np.float32))
  binary = feature_entropy(rng.choice([-1.0, 1.0], size=(n, d)).astype(np.float32))
  assert uniform > 0.97
  assert 0.6 < gaussian < 0.95
  assert binary == pytest.approx(np.log(2) / np.log(32), abs=0.01)  # two bins used, std still 1


def test_token_features_are_flattened():
  x = np.random.default_rng(5).normal(size=(16, 8, 32)).astype(np.float32)
  assert feature_std(x) == pytest.approx(feature_std(x.reshape(-1, 32)), rel=1e-6)
  assert collapse_report(x)["num_samples"] == 128


def linear_cka(x, y):
  """Linear CKA (Kornblith et al. 2019) of [N, Dx] and [N, Dy]: 1 = the same up to rotation and scale."""
  x, y = (np.asarray(a, np.float64) for a in (x, y))
  x, y = x - x.mean(0), y - y.mean(0)
  return float(np.sum((y.T @ x) ** 2) / np.sqrt(np.sum((x.T @ x) ** 2) * np.sum((y.T @ y) ** 2)))


def hierarchy_report(level_feats):
  """Per-level collapse stats, and linear CKA between token-mean-pooled levels (~1: the levels do not differ).

  Here, not in the library, as nothing but this test uses it: it checks the collapse metrics on levels of
  different widths and token counts.
  """
  levels, pooled = {}, {}
  for name, feats in level_feats.items():
    f = np.asarray(feats, np.float32)
    levels[str(name)] = {
      "feature_std": feature_std(f),
      "effective_rank": effective_rank(f),
      "rank_ratio": rank_ratio(f),
      "dim": int(f.shape[-1]),
    }
    pooled[str(name)] = f.mean(1) if f.ndim == 3 else f
  cka = {f"{a}|{b}": linear_cka(pooled[a], pooled[b]) for a, b in itertools.combinations(pooled, 2)}
  return {"levels": levels, "cka": cka, "mean_cka": float(np.mean(list(cka.values())))}


def test_hierarchy_report():
  rng = np.random.default_rng(6)
  base = rng.normal(size=(500, 32)).astype(np.float32)
  rot, _ = np.linalg.qr(rng.normal(size=(32, 32)))
  levels = {
    0: base,
    1: (2.0 * base @ rot).astype(np.float32),  # same representation up to rotation + scale
    "indep": rng.normal(size=(500, 4, 16)).astype(np.float32),  # token features, other width
  }
  rep = hierarchy_report(levels)
  json.dumps(rep)
  assert set(rep["levels"]) == {"0", "1", "indep"}
  assert rep["levels"]["indep"]["dim"] == 16
  assert rep["cka"]["0|1"] == pytest.approx(1.0, abs=1e-4)
  assert rep["cka"]["0|indep"] < 0.15
  assert rep["cka"]["1|indep"] < 0.15
  assert rep["mean_cka"] == pytest.approx(np.mean(list(rep["cka"].values())))
  assert linear_cka(base, base) == pytest.approx(1.0, abs=1e-5)


def test_linalg_falls_back_to_cpu_on_metal(monkeypatch):
  # jax-metal cannot run SVD/solve; on such backends the decompositions move to the CPU.
  import jax

  from hjepa_jax.evaluation import diagnostics

  monkeypatch.setattr(jax, "default_backend", lambda: "METAL")
  x = jax.numpy.asarray(np.eye(64, dtype=np.float32))
  moved = diagnostics._on_linalg_device(x)
  assert {d.platform for d in moved.devices()} == {"cpu"}
  assert effective_rank(x) == pytest.approx(64.0, rel=1e-3)
