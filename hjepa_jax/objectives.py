"""View-level objectives added on top of the H-JEPA regression: C-JEPA contrastive and VICReg.

Both take views (V, B, D): V >= 2 embeddings of the same B images, row b of every view is image b.
Views 0..num_global-1 are global crops; the rest are local crops that are only ever compared with
a global one (DINO / multi-crop convention), so a local-local pair never contributes. Everything
is computed in float32 so bfloat16 encoders do not lose the small logit / variance differences.
"""

import itertools

import jax
import jax.numpy as jnp


def view_pairs(num_views, num_global=None):
  """Unordered pairs (a, c), a < c, with at least one global view: the pairs both objectives use."""
  num_global = num_views if num_global is None else num_global
  if num_views < 2:
    raise ValueError(f"need at least 2 views, got {num_views}")
  if not 1 <= num_global <= num_views:
    raise ValueError(f"num_global={num_global} must be in [1, {num_views}]")
  return [(a, c) for a, c in itertools.combinations(range(num_views), 2) if a < num_global]


def _pair_arrays(views, num_global):
  """Views gathered as (P, B, D) twice with static indices, so pairs are vectorised, not looped."""
  pairs = view_pairs(views.shape[0], num_global)
  first = jnp.asarray([a for a, _ in pairs])
  second = jnp.asarray([c for _, c in pairs])
  return views[first], views[second]


def l2_normalize(x, eps=1e-12):
  """x / max(||x||, eps) (torch F.normalize): finite value and gradient for an all-zero row."""
  return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, -1, keepdims=True), eps * eps))


def _nt_xent(za, zc, temperature):
  """SimCLR NT-Xent on one pair of normalised views (B, D): (mean cross-entropy, top-1 accuracy)."""
  b = za.shape[0]
  z = jnp.concatenate([za, zc], axis=0)  # (2B, D)
  logits = jnp.einsum("id,jd->ij", z, z, precision=jax.lax.Precision.HIGHEST) / temperature
  eye = jnp.eye(2 * b, dtype=bool)
  logits = jnp.where(eye, jnp.finfo(jnp.float32).min, logits)  # self is not a candidate
  positive = (jnp.arange(2 * b) + b) % (2 * b)  # same image, other view
  pos_logit = jnp.take_along_axis(logits, positive[:, None], axis=1)[:, 0]
  loss = jnp.mean(jax.nn.logsumexp(logits, axis=1) - pos_logit)
  acc = jnp.mean((jnp.argmax(logits, axis=1) == positive).astype(jnp.float32))
  return loss, acc


def info_nce(views, temperature, num_global=None):
  """C-JEPA contrastive term: NT-Xent averaged over view pairs; returns (loss, accuracy).

  Per pair the 2B embeddings are candidates for each other: the positive of an anchor is the same
  image in the other view, the other 2B-2 (same view included) are negatives.
  """
  z = l2_normalize(jnp.asarray(views, jnp.float32))
  za, zc = _pair_arrays(z, num_global)
  loss, acc = jax.vmap(_nt_xent, in_axes=(0, 0, None))(za, zc, jnp.asarray(temperature, jnp.float32))
  return loss.mean(), acc.mean()


def variance_covariance(x, std_target=1.0, eps=1e-4):
  """VICReg variance and covariance terms of features x (N, D) -> (variance, covariance).

  Statistics over the N rows with the unbiased (N-1) normaliser as in VICReg; reusable for any flat
  set of features (e.g. predicted patch tokens) to discourage collapse.
  """
  x = jnp.asarray(x, jnp.float32)
  n, d = x.shape
  x = x - x.mean(0)
  var = jnp.sum(x * x, 0) / max(n - 1, 1)
  variance = jnp.mean(jax.nn.relu(std_target - jnp.sqrt(var + eps)))
  cov = jnp.einsum("nd,ne->de", x, x, precision=jax.lax.Precision.HIGHEST) / max(n - 1, 1)
  off_diag = cov * (1.0 - jnp.eye(d, dtype=cov.dtype))
  covariance = jnp.sum(off_diag * off_diag) / d
  return variance, covariance


def vicreg_terms(views, num_global=None, std_target=1.0, eps=1e-4):
  """VICReg terms over views (V, B, D): dict(invariance, variance, covariance).

  Invariance is the MSE between the SAME image's rows in two views (rows aligned, never two halves
  of one batch), averaged over view_pairs; variance and covariance are averaged over all views.
  """
  views = jnp.asarray(views, jnp.float32)
  za, zc = _pair_arrays(views, num_global)
  invariance = jnp.mean(jnp.square(za - zc))  # all pairs have equal size: mean of pair MSEs
  variance, covariance = jax.vmap(lambda v: variance_covariance(v, std_target, eps))(views)
  return dict(invariance=invariance, variance=variance.mean(), covariance=covariance.mean())


def vicreg_loss(terms, invariance_coeff, variance_coeff, covariance_coeff):
  """Weighted sum of vicreg_terms (VICReg's defaults are 25, 25, 1)."""
  return (
    invariance_coeff * terms["invariance"] + variance_coeff * terms["variance"] + covariance_coeff * terms["covariance"]
  )
