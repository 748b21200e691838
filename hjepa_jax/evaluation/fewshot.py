"""Few-shot evaluation on frozen features.

Two protocols:

* ``fewshot_episodes``: N-way K-shot episodes with a nearest-centroid
  classifier (SimpleShot "CL2N", Wang et al. 2019): features are centred with
  the mean of the evaluated feature set (no labels used) and L2-normalised;
  class centroids are the mean support feature; queries go to the centroid of
  highest cosine similarity. Episodes are sampled with ``jax.random`` and
  evaluated vmapped on device. Reports mean accuracy and the usual 95%
  interval ``1.96 * std / sqrt(num_episodes)`` (population std over episodes).
* ``ridge_fewshot``: the big_vision few-shot linear regression. For each shot
  count, take that many examples per class, standardise features with their
  mean/std, solve ridge regression in closed form onto +/-1 one-hot targets
  (with an unpenalised bias), and report test top-1. Cheap enough to run during
  pretraining as a progress signal.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Dict, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from hjepa_jax.evaluation.diagnostics import _on_linalg_device

__all__ = ["fewshot_episodes", "ridge_fewshot"]

_EPISODE_BATCH = 64  # episodes evaluated together per lax.map step (bounds memory)
_EVAL_CHUNK = 4096


def _as_f32(x) -> jax.Array:
  # Host-side cast for numpy inputs avoids compiling an eager convert op.
  return jnp.asarray(x if isinstance(x, jax.Array) else np.asarray(x, np.float32), jnp.float32)


@partial(jax.jit, static_argnames=("n_way", "k_shot", "n_query", "num_batches"))
def _episode_accuracies(feats, class_table, class_counts, seed, *, n_way, k_shot, n_query, num_batches):
  """Accuracy of each of ``num_batches * _EPISODE_BATCH`` episodes."""
  keys = jax.random.split(jax.random.PRNGKey(seed), num_batches * _EPISODE_BATCH)
  x = feats - jnp.mean(feats, axis=0, keepdims=True)
  x = x / jnp.maximum(jnp.linalg.norm(x, axis=1, keepdims=True), 1e-12)
  n_classes, max_count = class_table.shape
  per_class = k_shot + n_query

  def episode(key):
    ckey, skey = jax.random.split(key)
    # argsort of uniforms = random permutation; compiles far faster than
    # jax.random.permutation on CPU.
    classes = jnp.argsort(jax.random.uniform(ckey, (n_classes,)))[:n_way]  # [W]
    # Random distinct examples per class: sort random scores, padded slots last.
    scores = jax.random.uniform(skey, (n_way, max_count))
    slots = jnp.arange(max_count)[None, :]
    scores = jnp.where(slots < class_counts[classes][:, None], scores, 2.0)
    order = jnp.argsort(scores, axis=1)[:, :per_class]  # [W, K+Q]
    idx = jnp.take_along_axis(class_table[classes], order, axis=1)
    ex = x[idx]  # [W, K+Q, D]
    support, query = ex[:, :k_shot], ex[:, k_shot:]
    centroids = jnp.mean(support, axis=1)
    centroids = centroids / jnp.maximum(jnp.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    sims = jnp.einsum("wqd,cd->wqc", query, centroids)
    pred = jnp.argmax(sims, axis=-1)
    return jnp.mean((pred == jnp.arange(n_way)[:, None]).astype(jnp.float32))

  keys = keys.reshape((num_batches, _EPISODE_BATCH) + keys.shape[1:])
  return jax.lax.map(jax.vmap(episode), keys).reshape(-1)


def fewshot_episodes(
  feats,
  labels,
  *,
  n_way: int = 5,
  k_shot: int = 1,
  n_query: int = 15,
  num_episodes: int = 600,
  seed: int = 0,
) -> Dict[str, object]:
  """Mean N-way K-shot nearest-centroid accuracy over random episodes.

  Only classes with at least ``k_shot + n_query`` examples can be sampled;
  ``n_way`` is clipped to the number of such classes (the returned ``n_way``
  is the one actually used). Raises if fewer than 2 classes qualify.
  Returns ``{"mean", "ci95", "n_way", "k_shot", "num_episodes"}``.
  """
  feats = _as_f32(feats)
  labels_np = np.asarray(labels).astype(np.int64).reshape(-1)
  if feats.ndim != 2 or feats.shape[0] != labels_np.shape[0]:
    raise ValueError(f"expected feats [N, D] and labels [N], got {feats.shape}, {labels_np.shape}")
  if k_shot < 1 or n_query < 1 or num_episodes < 1:
    raise ValueError("k_shot, n_query and num_episodes must be >= 1")
  # Per-class index table (host-side label bookkeeping only; features stay on device).
  classes, counts = np.unique(labels_np, return_counts=True)
  eligible = classes[counts >= k_shot + n_query]
  if eligible.size < 2:
    raise ValueError(f"need >= 2 classes with >= {k_shot + n_query} examples, found {eligible.size}")
  n_way = int(min(n_way, eligible.size))
  order = np.argsort(labels_np, kind="stable")
  sorted_labels = labels_np[order]
  elig_counts = counts[counts >= k_shot + n_query]
  max_count = int(elig_counts.max())
  table = np.zeros((eligible.size, max_count), np.int32)
  for row, c in enumerate(eligible):
    lo, hi = np.searchsorted(sorted_labels, [c, c + 1])
    table[row, : hi - lo] = order[lo:hi]

  num_batches = -(-num_episodes // _EPISODE_BATCH)
  accs = _episode_accuracies(
    feats,
    table,
    elig_counts.astype(np.int32),
    np.uint32(seed),
    n_way=n_way,
    k_shot=int(k_shot),
    n_query=int(n_query),
    num_batches=num_batches,
  )
  accs = np.asarray(jax.device_get(accs), dtype=np.float32)[:num_episodes]
  return {
    "mean": float(accs.mean()),
    "ci95": float(1.96 * accs.std() / math.sqrt(num_episodes)),
    "n_way": n_way,
    "k_shot": int(k_shot),
    "num_episodes": int(num_episodes),
  }


def _ridge_fit(x, y, l2_reg, num_classes):
  """Closed-form ridge onto +/-1 targets with unpenalised bias; returns (W, b, mean, std)."""
  mean = jnp.mean(x, axis=0)
  std = jnp.std(x, axis=0)
  std = jnp.where(std > 1e-6, std, 1.0)
  xs = (x - mean) / std
  t = 2.0 * jax.nn.one_hot(y, num_classes, dtype=jnp.float32) - 1.0
  bias = jnp.mean(t, axis=0)  # exact least-squares bias since xs is centred
  tc = t - bias
  n, d = xs.shape
  if n < d:  # dual form: W = X^T (X X^T + l2 I)^-1 T, an n x n solve
    gram = xs @ xs.T + l2_reg * jnp.eye(n, dtype=jnp.float32)
    w = xs.T @ jnp.linalg.solve(gram, tc)
  else:  # primal form: W = (X^T X + l2 I)^-1 X^T T, a d x d solve
    gram = xs.T @ xs + l2_reg * jnp.eye(d, dtype=jnp.float32)
    w = jnp.linalg.solve(gram, xs.T @ tc)
  return w, bias, mean, std


@partial(jax.jit, static_argnames=("num_classes",))
def _ridge_correct(train_x, train_y, test_x, test_y, selections, l2_reg, *, num_classes):
  """Test correct counts, one per index array in ``selections`` (one compile for all shots)."""
  n = test_x.shape[0]
  chunk = max(1, min(_EVAL_CHUNK, n))
  pad = (-n) % chunk
  tx = jnp.pad(test_x, ((0, pad), (0, 0))).reshape(-1, chunk, test_x.shape[1])
  ty = jnp.pad(test_y, (0, pad)).reshape(-1, chunk)
  valid = (jnp.arange(n + pad) < n).reshape(-1, chunk)
  out = []
  for sel in selections:
    w, b, mean, std = _ridge_fit(train_x[sel], train_y[sel], l2_reg, num_classes)

    def body(args, w=w, b=b, mean=mean, std=std):
      xc, yc, vc = args
      pred = jnp.argmax(((xc - mean) / std) @ w + b, axis=1)
      return jnp.sum((pred == yc) & vc)

    out.append(jnp.sum(jax.lax.map(body, (tx, ty, valid))))
  return jnp.stack(out)


def ridge_fewshot(
  train_x,
  train_y,
  test_x,
  test_y,
  *,
  num_classes: int,
  shots: Sequence[int] = (1, 5, 10),
  l2_reg: float = 2.0**10,
  seed: int = 0,
) -> Dict[str, float]:
  """big_vision-style few-shot ridge regression: ``{"fewshot_ridge_{s}shot": top1}``.

  For each shot count s, the first s examples of each class in one seeded
  random order of the train set are used (so smaller shot sets are subsets
  of larger ones and results are deterministic by ``seed``); a class with
  fewer than s examples contributes all it has. ``l2_reg`` defaults to
  big_vision's 2**10, which suits standardised features of a few hundred dims.
  """
  train_x, test_x = _as_f32(train_x), _as_f32(test_x)
  train_y_np = np.asarray(train_y).astype(np.int64).reshape(-1)
  test_y = np.asarray(test_y).astype(np.int32).reshape(-1)
  n = train_y_np.shape[0]
  if train_x.ndim != 2 or train_x.shape[0] != n or test_x.ndim != 2 or test_x.shape[1] != train_x.shape[1]:
    raise ValueError(f"bad shapes: train {train_x.shape}/{train_y_np.shape}, test {test_x.shape}")
  if test_x.shape[0] != test_y.shape[0] or test_y.shape[0] == 0:
    raise ValueError(f"bad test set: {test_x.shape} vs labels {test_y.shape}")
  shots = [int(s) for s in shots]
  if not shots or min(shots) < 1:
    raise ValueError(f"shots must be positive integers, got {shots}")

  # Rank of each example within its class under a seeded random order
  # (host-side label bookkeeping only).
  perm = np.random.default_rng(seed).permutation(n)
  by_class = perm[np.argsort(train_y_np[perm], kind="stable")]
  sorted_labels = train_y_np[by_class]
  starts = np.searchsorted(sorted_labels, sorted_labels, side="left")
  rank = np.empty(n, np.int64)
  rank[by_class] = np.arange(n) - starts
  selections = tuple(np.nonzero(rank < s)[0].astype(np.int32) for s in shots)

  # The solve runs on the CPU on backends without linalg kernels (jax-metal).
  train_x, test_x = _on_linalg_device(train_x, test_x)
  correct = _ridge_correct(
    train_x,
    train_y_np.astype(np.int32),
    test_x,
    test_y,
    selections,
    np.float32(l2_reg),
    num_classes=int(num_classes),
  )
  correct = np.asarray(jax.device_get(correct))
  return {f"fewshot_ridge_{s}shot": float(c) / test_y.shape[0] for s, c in zip(shots, correct)}
