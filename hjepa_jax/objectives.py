"""Objectives added on top of the H-JEPA regression: C-JEPA contrastive and VICReg between views, and SIGReg.

Both take views (V, B, D): V >= 2 embeddings of the same B images, row b of every view is image b.
Views 0..num_global-1 are global crops; the rest are local crops that are only ever compared with
a global one (DINO / multi-crop convention), so a local-local pair never contributes. Everything
is computed in float32 so bfloat16 encoders do not lose the small logit / variance differences.
SIGReg (LeJEPA) needs no second view: it reads one embedding per image (`sigreg`).
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


def random_directions(rng, dim, num):
  """`num` random unit vectors in R^dim as the columns of a (dim, num) float32 matrix."""
  a = jax.random.normal(rng, (dim, num), jnp.float32)
  return a / jnp.linalg.norm(a, axis=0, keepdims=True)


def sigreg(z, directions, num_points=17, t_max=3.0):
  """SIGReg (LeJEPA, Balestriero & LeCun 2025): how far embeddings z (N, D) are from an isotropic standard Gaussian.

  Cramer-Wold: a distribution is N(0, I) when every 1-D projection is N(0, 1), so the test runs along the
  columns of `directions` (D, M; drawn afresh each step). Per direction, the Epps-Pulley statistic
  N * integral over t of |phi_N(t) - exp(-t^2/2)|^2 exp(-t^2/2): the squared distance between the empirical
  characteristic function of the N projected values and the Gaussian's, weighted by the Gaussian's. The
  integrand is even in t, so twice the trapezoid rule on [0, t_max] with `num_points` nodes. Smooth and
  bounded (cos and sin of the samples), so its gradient cannot blow up as moments-based tests' can. The
  mean over directions; 0 for a perfect N(0, I) sample of infinite size.
  """
  z = jnp.asarray(z, jnp.float32)
  proj = z @ directions  # (N, M)
  t = jnp.linspace(0.0, t_max, num_points)
  tp = t[:, None, None] * proj[None]  # (K, N, M)
  real, imag = jnp.cos(tp).mean(1), jnp.sin(tp).mean(1)  # the empirical characteristic function, (K, M)
  gauss = jnp.exp(-0.5 * jnp.square(t))[:, None]
  integrand = (jnp.square(real - gauss) + jnp.square(imag)) * gauss
  dt = t_max / (num_points - 1)
  trapezoid = dt * (integrand.sum(0) - 0.5 * (integrand[0] + integrand[-1]))
  return (2.0 * z.shape[0] * trapezoid).mean()
