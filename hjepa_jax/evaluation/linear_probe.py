"""Linear probe on frozen features with a small, vmapped hyperparameter sweep.

Recipe (chosen for robustness and speed on a laptop CPU/GPU):

* Split: a seeded random ``holdout_fraction`` of the train split is held out
  for model selection; the rest is the fitting part.
* Features are standardised with the mean/std of the part being fitted (the
  fitting part during the sweep, the full train split for the final model),
  so one lr grid works for any backbone's feature scale.
* Model: a linear layer (W, b), zero-initialised (the problem is convex, so
  zero init is deterministic and loses nothing).
* Loss: softmax cross-entropy, no label smoothing.
* Optimiser: AdamW (``optax.scale_by_adam`` + decoupled weight decay on W only,
  not on b, scaled by the scheduled lr as in ``optax.adamw``) with a cosine
  learning-rate decay to 0 over all steps, no warmup.
  Adam is insensitive to the feature/logit scale, so a 3-point lr grid is
  enough; SGD would need a much wider grid.
* Batches: each epoch is a fresh random permutation (``jax.random``) of the fitting
  part, ``floor(n / batch_size)`` steps (remainder dropped); every
  hyperparameter setting sees the same batch order, so the sweep compares
  hyperparameters rather than batch noise.
* Sweep: all (lr, weight_decay) pairs are trained at once with ``jax.vmap``
  inside one jitted ``lax.scan`` training loop (compiles once), selected by
  held-out top-1 (ties go to the earlier pair in ``lrs x weight_decays``
  order), then retrained on the full train split and evaluated on test.

Deterministic given ``seed`` (same device/backend).
"""

from __future__ import annotations

import itertools
from functools import partial
from typing import Dict, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = ["linear_probe"]

_EVAL_CHUNK = 4096


def _as_f32(x) -> jax.Array:
  # Host-side cast for numpy inputs avoids compiling an eager convert op.
  return jnp.asarray(x if isinstance(x, jax.Array) else np.asarray(x, np.float32), jnp.float32)


def _as_i32(x) -> jax.Array:
  return jnp.asarray(x if isinstance(x, jax.Array) else np.asarray(x, np.int32), jnp.int32)


def _standardize_stats(x: jax.Array):
  mean = jnp.mean(x, axis=0)
  std = jnp.std(x, axis=0)
  return mean, jnp.where(std > 1e-6, std, 1.0)


@partial(jax.jit, static_argnames=("num_classes", "epochs", "batch_size"))
def _train_probes(x, y, lrs, wds, key, *, num_classes: int, epochs: int, batch_size: int):
  """Train one linear probe per (lr, wd) pair on standardised x. Returns (W [H,D,C], b [H,C])."""
  n, d = x.shape
  steps_per_epoch = n // batch_size
  total_steps = epochs * steps_per_epoch
  opt = optax.scale_by_adam()

  def loss_fn(params, xb, yb):
    logits = xb @ params["w"] + params["b"]
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, yb))

  # Batch indices for all epochs (shared by every hyperparameter setting):
  # [total_steps, batch_size] int32, small even for long runs.
  # argsort of uniforms is a uniform random permutation and compiles much
  # faster on CPU than jax.random.permutation's multi-round shuffle.
  keep = steps_per_epoch * batch_size
  idx = jnp.argsort(jax.random.uniform(key, (epochs, n)), axis=1)[:, :keep]
  idx = idx.reshape(total_steps, batch_size)

  def train_hp(lr, wd):
    # Gather batches lazily inside the scan to avoid materialising
    # total_steps x batch_size x D floats.
    params = {
      "w": jnp.zeros((d, num_classes), jnp.float32),
      "b": jnp.zeros((num_classes,), jnp.float32),
    }
    state = opt.init(params)

    def step(carry, bidx):
      params, state, t = carry
      xb, yb = x[bidx], y[bidx]
      grads = jax.grad(loss_fn)(params, xb, yb)
      updates, state = opt.update(grads, state, params)
      lr_t = lr * 0.5 * (1.0 + jnp.cos(jnp.pi * t / total_steps))
      params = {
        "w": params["w"] - lr_t * (updates["w"] + wd * params["w"]),
        "b": params["b"] - lr_t * updates["b"],
      }
      return (params, state, t + 1.0), None

    (params, _, _), _ = jax.lax.scan(step, (params, state, jnp.float32(0.0)), idx)
    return params["w"], params["b"]

  return jax.vmap(train_hp)(lrs, wds)


def _correct_count(w, b, x, y, mean, std):
  """Correct predictions per probe (w [H,D,C], b [H,C]) on (x, y), in fixed-size chunks."""
  n = x.shape[0]
  chunk = max(1, min(_EVAL_CHUNK, n))
  pad = (-n) % chunk
  xs = jnp.pad((x - mean) / std, ((0, pad), (0, 0))).reshape(-1, chunk, x.shape[1])
  ys = jnp.pad(y, (0, pad)).reshape(-1, chunk)
  valid = (jnp.arange(n + pad) < n).reshape(-1, chunk)

  def body(args):
    xc, yc, vc = args
    logits = jnp.einsum("nd,hdc->hnc", xc, w) + b[:, None, :]
    pred = jnp.argmax(logits, axis=-1)
    return jnp.sum((pred == yc[None, :]) & vc[None, :], axis=1)

  return jnp.sum(jax.lax.map(body, (xs, ys, valid)), axis=0)


def _fit(x, y, lrs, wds, key, *, num_classes, epochs, batch_size):
  mean, std = _standardize_stats(x)
  w, b = _train_probes(
    (x - mean) / std,
    y,
    lrs,
    wds,
    key,
    num_classes=num_classes,
    epochs=epochs,
    batch_size=min(batch_size, x.shape[0]),
  )
  return w, b, mean, std


@partial(jax.jit, static_argnames=("num_classes", "epochs", "batch_size", "n_hold"))
def _sweep(x, y, lrs, wds, seed, *, num_classes, epochs, batch_size, n_hold):
  """Held-out correct counts [H] for every (lr, wd) pair, fitted on the rest."""
  split_key, fit_key = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(seed), 0))
  perm = jnp.argsort(jax.random.uniform(split_key, (x.shape[0],)))
  hold, fit = perm[:n_hold], perm[n_hold:]
  w, b, mean, std = _fit(
    x[fit],
    y[fit],
    lrs,
    wds,
    fit_key,
    num_classes=num_classes,
    epochs=epochs,
    batch_size=batch_size,
  )
  return _correct_count(w, b, x[hold], y[hold], mean, std)


@partial(jax.jit, static_argnames=("num_classes", "epochs", "batch_size"))
def _final(x, y, test_x, test_y, lr, wd, seed, *, num_classes, epochs, batch_size):
  """Test correct count of one probe fitted on all of (x, y)."""
  key = jax.random.fold_in(jax.random.PRNGKey(seed), 1)
  w, b, mean, std = _fit(
    x,
    y,
    lr[None],
    wd[None],
    key,
    num_classes=num_classes,
    epochs=epochs,
    batch_size=batch_size,
  )
  return _correct_count(w, b, test_x, test_y, mean, std)[0]


def linear_probe(
  train_x,
  train_y,
  test_x,
  test_y,
  *,
  num_classes: int,
  lrs: Sequence[float] = (1e-3, 3e-3, 1e-2),
  weight_decays: Sequence[float] = (0.0, 5e-2),
  epochs: int = 20,
  batch_size: int = 256,
  holdout_fraction: float = 0.1,
  seed: int = 0,
) -> Dict[str, object]:
  """Sweep (lr, wd) on a held-out split, retrain the best on all train data, report test top-1.

  Returns ``{"top1", "best_lr", "best_weight_decay", "holdout_top1", "sweep"}``
  where ``sweep`` is a list of ``{"lr", "weight_decay", "holdout_top1"}``.
  ``holdout_fraction`` may be 0 only when the grid has a single setting
  (nothing to select); ``holdout_top1`` is then ``None``.
  """
  train_x, test_x = _as_f32(train_x), _as_f32(test_x)
  train_y, test_y = _as_i32(train_y), _as_i32(test_y)
  if train_x.ndim != 2 or test_x.ndim != 2 or train_x.shape[1] != test_x.shape[1]:
    raise ValueError(f"expected [N, D] features with equal D, got {train_x.shape}, {test_x.shape}")
  if epochs < 1 or batch_size < 1:
    raise ValueError("epochs and batch_size must be >= 1")
  grid = list(itertools.product([float(v) for v in lrs], [float(v) for v in weight_decays]))
  if not grid:
    raise ValueError("empty hyperparameter grid")
  n = int(train_x.shape[0])
  n_hold = int(round(n * float(holdout_fraction)))
  if holdout_fraction > 0:
    n_hold = max(1, n_hold)
  if n_hold == 0 and len(grid) > 1:
    raise ValueError("holdout_fraction must be > 0 to select among several hyperparameters")
  if not 0 <= n_hold < n:
    raise ValueError(f"holdout_fraction={holdout_fraction} leaves no training data")

  seed_arr = np.uint32(seed)
  static = dict(num_classes=int(num_classes), epochs=int(epochs), batch_size=int(batch_size))

  sweep = []
  holdout_top1 = None
  best = 0
  if n_hold > 0:
    counts = _sweep(
      train_x,
      train_y,
      np.asarray([g[0] for g in grid], np.float32),
      np.asarray([g[1] for g in grid], np.float32),
      seed_arr,
      n_hold=n_hold,
      **static,
    )
    accs = [int(c) / n_hold for c in jax.device_get(counts)]
    best = int(np.argmax(accs))  # first maximum: deterministic tie-break
    holdout_top1 = float(accs[best])
    sweep = [{"lr": lr, "weight_decay": wd, "holdout_top1": float(a)} for (lr, wd), a in zip(grid, accs)]

  best_lr, best_wd = grid[best]
  correct = _final(
    train_x,
    train_y,
    test_x,
    test_y,
    np.float32(best_lr),
    np.float32(best_wd),
    seed_arr,
    **static,
  )
  top1 = float(correct) / int(test_x.shape[0])
  return {
    "top1": top1,
    "best_lr": best_lr,
    "best_weight_decay": best_wd,
    "holdout_top1": holdout_top1,
    "sweep": sweep,
  }
