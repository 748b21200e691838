"""Representation-collapse diagnostics on feature matrices.

Inputs are [N, D] features or [N, T, D] token features; token features are
flattened to [N * T, D] (every token is a sample), which is what matters for
JEPA-style token-level collapse. All numbers are computed on device in
float32 and returned as plain python floats/bools (json-serialisable).

* ``feature_std``: mean over dims of the per-dim std across samples. This is
  the project's "feature_variance" monitor. The thresholds (>0.1 healthy,
  <0.05 collapse) assume LayerNorm-scaled outputs (per-dim scale ~1), not
  L2-normalised vectors (whose per-dim std is ~1/sqrt(D) even when healthy).
* ``effective_rank``: RankMe (Garrido et al. 2023): exp of the Shannon entropy
  of the singular values normalised to sum to 1 (plus eps=1e-7 as in the
  paper). Uncentred by default like RankMe; ``center=True`` removes the mean
  first, which measures the spread around the mean (a constant offset alone
  then contributes nothing). Computed with an SVD of the matrix itself (not
  the Gram matrix, whose squared spectrum loses small singular values in
  float32).
* ``feature_entropy``: mean over dims of the Shannon entropy of a histogram of
  that dim's values, bins spanning the dim's [min, max], normalised by
  log(num_bins) to [0, 1]. Constant dims score 0, gaussian dims ~0.8, uniform
  dims ~1. Being scale-free it complements ``feature_std``: it catches dims
  that saturate onto a few values (e.g. binary/dead units) while keeping a
  large std.
"""

from __future__ import annotations

from functools import partial
from typing import Dict

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
  "feature_std",
  "effective_rank",
  "rank_ratio",
  "feature_entropy",
  "collapse_report",
]

_RANKME_EPS = 1e-7
# Plugin backends without LAPACK-style kernels: jax-metal fails to legalize
# mhlo.cholesky / SVD / LU, so decompositions run on the host CPU there.
_NO_LINALG_BACKENDS = ("metal", "mps", "mtl", "mlx")


def _on_linalg_device(*arrays):
  """Move arrays to the CPU when the default backend cannot run SVD/solve; identity elsewhere."""
  if jax.default_backend().lower() in _NO_LINALG_BACKENDS:
    cpu = jax.devices("cpu")[0]
    arrays = tuple(jax.device_put(a, cpu) for a in arrays)
  return arrays[0] if len(arrays) == 1 else arrays


def _to_f32(x) -> jax.Array:
  # Host-side cast for numpy inputs avoids compiling an eager convert op.
  return jnp.asarray(x if isinstance(x, jax.Array) else np.asarray(x, np.float32), jnp.float32)


def _as_2d(x) -> jax.Array:
  x = _to_f32(x)
  if x.ndim == 3:
    return x.reshape(-1, x.shape[-1])
  if x.ndim != 2:
    raise ValueError(f"expected [N, D] or [N, T, D] features, got shape {x.shape}")
  return x


@jax.jit
def _feature_std(x):
  return jnp.mean(jnp.std(x, axis=0))


@partial(jax.jit, static_argnames=("center",))
def _effective_rank(x, *, center):
  if center:
    x = x - jnp.mean(x, axis=0, keepdims=True)
  s = jnp.linalg.svd(x, compute_uv=False)
  p = s / (jnp.sum(s) + _RANKME_EPS) + _RANKME_EPS
  return jnp.exp(-jnp.sum(p * jnp.log(p)))


@partial(jax.jit, static_argnames=("num_bins",))
def _feature_entropy(x, *, num_bins):
  n, d = x.shape
  lo, hi = jnp.min(x, axis=0), jnp.max(x, axis=0)
  width = jnp.where(hi > lo, hi - lo, 1.0)  # constant dims land in bin 0
  bins = jnp.clip(jnp.floor((x - lo) / width * num_bins).astype(jnp.int32), 0, num_bins - 1)
  # One bincount over (dim, bin) pairs = all D histograms in a single scatter-add.
  flat = (bins + jnp.arange(d, dtype=jnp.int32)[None, :] * num_bins).reshape(-1)
  counts = jnp.bincount(flat, length=d * num_bins).reshape(d, num_bins)
  p = counts.astype(jnp.float32) / n
  h = -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0), axis=1)
  return jnp.mean(h) / jnp.log(jnp.float32(num_bins))


def feature_std(x) -> float:
  """Mean over dims of the per-dim std across samples (collapse -> 0)."""
  return float(_feature_std(_as_2d(x)))


def effective_rank(x, *, center: bool = False) -> float:
  """RankMe effective rank in [1, min(N, D)] (uncentred by default, as in RankMe)."""
  return float(_effective_rank(_on_linalg_device(_as_2d(x)), center=bool(center)))


def rank_ratio(x, *, center: bool = False) -> float:
  """``effective_rank / min(N, D)``: 1 = full rank, ~1/min(N, D) = rank-1 collapse."""
  x = _as_2d(x)
  return effective_rank(x, center=center) / min(x.shape)


def feature_entropy(x, *, num_bins: int = 32) -> float:
  """Mean per-dim histogram entropy normalised to [0, 1] (0 = constant dims)."""
  if num_bins < 2:
    raise ValueError("num_bins must be >= 2")
  return float(_feature_entropy(_as_2d(x), num_bins=int(num_bins))) + 0.0  # no -0.0


def collapse_report(
  x,
  *,
  std_threshold: float = 0.05,
  rank_ratio_threshold: float = 0.01,
  center: bool = False,
) -> Dict[str, object]:
  """All diagnostics plus ``collapsed`` (std or rank ratio below its threshold)."""
  x = _as_2d(x)
  std = feature_std(x)
  erank = effective_rank(x, center=center)
  ratio = erank / min(x.shape)
  return {
    "feature_std": std,
    "effective_rank": erank,
    "rank_ratio": ratio,
    "feature_entropy": feature_entropy(x),
    "collapsed": bool(std < std_threshold or ratio < rank_ratio_threshold),
    "std_threshold": float(std_threshold),
    "rank_ratio_threshold": float(rank_ratio_threshold),
    "num_samples": int(x.shape[0]),
    "dim": int(x.shape[1]),
  }
