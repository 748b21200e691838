"""Objectives: NT-Xent values at known optima / chance, VICReg terms, pairing of views, SIGReg on known samples."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hjepa_jax import objectives

# Jitted once per shape: eager dispatch compiles every op separately, which dominates CPU test time.
info_nce = jax.jit(objectives.info_nce, static_argnames="num_global")
vicreg_terms = jax.jit(objectives.vicreg_terms, static_argnames="num_global")
variance_covariance = jax.jit(objectives.variance_covariance)
sigreg = jax.jit(objectives.sigreg)


def hadamard_columns(n, d):
  """(n, d) +-1 columns of a Hadamard matrix without its constant column: zero mean, orthogonal."""
  h = np.array([[1.0]])
  while h.shape[0] < n:
    h = np.block([[h, h], [h, -h]])
  return h[:, 1 : d + 1].astype(np.float32)


def orthonormal_rows(b, d, seed=0):
  q, _ = np.linalg.qr(np.random.RandomState(seed).randn(d, b))
  return q.T.astype(np.float32)  # (b, d), orthonormal rows


@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_identical_orthonormal_views_reach_the_analytic_minimum(temperature):
  b = 8
  z = 3.0 * orthonormal_rows(b, 16)  # scale must not matter
  loss, acc = info_nce(np.stack([z, z]), temperature)
  # Positive logit 1/T, the 2B-2 negatives are orthogonal (logit 0), self excluded.
  expected = math.log(1 + (2 * b - 2) * math.exp(-1 / temperature))
  np.testing.assert_allclose(loss, expected, atol=1e-5)
  assert float(acc) == 1.0


def test_unrelated_second_view_is_at_chance():
  b, d = 512, 256
  rng = np.random.RandomState(0)
  first = rng.randn(b, d).astype(np.float32)
  second = rng.randn(b, d).astype(np.float32)[rng.permutation(b)]  # rows are other images
  loss, acc = info_nce(np.stack([first, second]), 1.0)
  assert float(acc) < 10 / (2 * b - 1)
  np.testing.assert_allclose(loss, math.log(2 * b - 1), atol=0.02)


def test_info_nce_is_symmetric_in_the_views_and_uses_float32():
  rng = np.random.RandomState(0)
  a = rng.randn(16, 8).astype(np.float32)
  c = a + 0.5 * rng.randn(16, 8).astype(np.float32)
  ab, acc_ab = info_nce(np.stack([a, c]), 0.2)
  ba, acc_ba = info_nce(np.stack([c, a]), 0.2)
  np.testing.assert_allclose(ab, ba, rtol=1e-6)
  np.testing.assert_allclose(acc_ab, acc_ba)
  low, _ = info_nce(np.stack([a, c]).astype(jnp.bfloat16), 0.2)
  assert low.dtype == jnp.float32


def test_multi_view_pairs_and_average():
  pairs = objectives.view_pairs(4, num_global=2)
  assert pairs == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3)]  # 2*3-1: no local-local pair
  assert len(objectives.view_pairs(4)) == 6
  views = np.random.RandomState(0).randn(4, 12, 8).astype(np.float32)
  loss, acc = info_nce(views, 0.3, num_global=2)
  per_pair = [info_nce(views[[a, c]], 0.3) for a, c in pairs]
  np.testing.assert_allclose(loss, np.mean([l for l, _ in per_pair]), rtol=1e-5)
  np.testing.assert_allclose(acc, np.mean([a for _, a in per_pair]), rtol=1e-5)
  terms = vicreg_terms(views, num_global=2)
  v = views
  inv = np.mean([np.mean((v[a] - v[c]) ** 2) for a, c in pairs])
  np.testing.assert_allclose(terms["invariance"], inv, rtol=1e-5)
  with pytest.raises(ValueError, match="num_global"):
    objectives.view_pairs(4, num_global=0)


def test_invariance_pairs_the_same_image_across_views_not_batch_halves():
  # First half: bright images; second half: totally different images. Both views are identical,
  # so every same-image pair matches; pairing the two halves of the batch would give a huge error.
  rng = np.random.RandomState(0)
  first_half = 10.0 + rng.randn(8, 16)
  second_half = -10.0 + rng.randn(8, 16)
  batch = np.concatenate([first_half, second_half]).astype(np.float32)
  terms = vicreg_terms(np.stack([batch, batch]))
  assert float(terms["invariance"]) == 0.0
  # Row-aligned MSE: a per-image offset between the views is measured exactly.
  shifted = batch + np.arange(16.0, dtype=np.float32)[:, None]
  terms = vicreg_terms(np.stack([batch, shifted]))
  np.testing.assert_allclose(terms["invariance"], np.mean(np.arange(16.0) ** 2), rtol=1e-6)


def test_variance_term_hinges_at_the_target_std():
  x = 2.0 * hadamard_columns(16, 8)  # per-dim std 2*sqrt(16/15) >= 1
  var, _ = variance_covariance(x)
  assert float(var) == 0.0
  collapsed = np.ones((16, 8), np.float32)
  var, cov = variance_covariance(collapsed)
  np.testing.assert_allclose(var, 1.0 - math.sqrt(1e-4), rtol=1e-5)  # relu(1 - sqrt(0 + eps))
  assert float(cov) == 0.0
  terms = vicreg_terms(np.stack([x, np.ones_like(x)]))
  np.testing.assert_allclose(terms["variance"], (1.0 - math.sqrt(1e-4)) / 2, rtol=1e-5)


def test_covariance_term_zero_when_decorrelated_positive_when_correlated():
  decorrelated = hadamard_columns(16, 8)  # zero mean, cov = (16/15) I
  _, cov = variance_covariance(decorrelated)
  np.testing.assert_allclose(cov, 0.0, atol=1e-6)
  base = np.random.RandomState(0).randn(64, 1)
  correlated = np.concatenate([base, 2 * base, -base], axis=1).astype(np.float32)
  _, cov = variance_covariance(correlated)
  assert float(cov) > 0.5


def test_gradients_finite_and_jit():
  views = np.random.RandomState(0).randn(3, 8, 6).astype(np.float32)
  views[2] = 0.0  # one collapsed (zero) view

  def total(v):
    loss, _ = info_nce(v, 0.1, num_global=2)
    return loss + objectives.vicreg_loss(vicreg_terms(v, num_global=2), 25.0, 25.0, 1.0)

  value, grad = jax.jit(jax.value_and_grad(total))(views)
  assert np.isfinite(float(value)) and bool(np.isfinite(np.asarray(grad)).all())
  assert float(np.abs(np.asarray(grad)).sum()) > 0


def test_sigreg_is_near_zero_for_a_gaussian_and_grows_with_the_batch_otherwise():
  directions = objectives.random_directions(jax.random.PRNGKey(1), 16, 64)
  np.testing.assert_allclose(np.linalg.norm(np.asarray(directions), axis=0), 1.0, rtol=1e-5)
  for n in (128, 1024):
    z = jax.random.normal(jax.random.PRNGKey(0), (n, 16))
    gaussian = float(sigreg(z, directions))
    assert 0 <= gaussian < 2.0  # the statistic of a true N(0, I) sample does not grow with N
    for other in (3.0 * z, 0.3 * z, z + 2.0, jnp.zeros_like(z)):  # too wide, too narrow, shifted, collapsed
      assert float(sigreg(other, directions)) > 20 * gaussian * n / 128


def test_sigreg_pulls_the_scale_towards_one():
  z = jax.random.normal(jax.random.PRNGKey(0), (512, 16))
  directions = objectives.random_directions(jax.random.PRNGKey(1), 16, 64)
  grad = jax.grad(lambda s: sigreg(s * z, directions))
  assert float(grad(3.0)) > 0 > float(grad(0.3))  # gradient descent shrinks a wide sample, widens a narrow one
