"""Target encoder = closed-form EMA of the context encoder; no gradient reaches it."""

import jax
import jax.numpy as jnp
import numpy as np

from hjepa_jax.train_step import loss_fn
from hjepa_jax.masks import sample_masks
from tests._core import synthetic_images, tiny_setup


def test_target_equals_closed_form_ema():
  total, n = 10, 4
  spec, _, state, step_fn = tiny_setup(
    total_steps=total, warmup_steps=0, **{"optim.lr": 1e-2, "ema.start": 0.5, "ema.end": 0.9}
  )
  step_fn = jax.jit(step_fn)
  images = {"image": synthetic_images(8)}
  leaf = lambda s, key: np.asarray(jax.tree_util.tree_leaves(s[key] if key == "target" else s["params"]["encoder"])[3])
  t0 = leaf(state, "target")
  online = []
  for _ in range(n):
    state, _ = step_fn(state, images, jax.random.PRNGKey(0))
    online.append(leaf(state, "online"))
  m = [0.5 + 0.4 * i / total for i in range(n)]
  # t_n = prod(m) t_0 + sum_i (1 - m_i) prod_{j > i} m_j p_{i+1}
  expected = np.prod(m) * t0 + sum((1 - m[i]) * np.prod(m[i + 1 :]) * online[i] for i in range(n))
  np.testing.assert_allclose(leaf(state, "target"), expected, rtol=1e-5, atol=1e-6)
  assert np.abs(leaf(state, "target") - online[-1]).max() > 1e-4  # really lags behind


def test_no_gradient_reaches_target_params():
  spec, _, state, _ = tiny_setup()
  images = jnp.asarray(synthetic_images(4), jnp.float32) / 255.0
  masks = sample_masks(jax.random.PRNGKey(0), 4, spec.masks)
  g = jax.jit(jax.grad(lambda t: loss_fn(spec, state["params"], t, images, masks)[0]))(state["target"])
  assert all(float(jnp.abs(x).max()) == 0.0 for x in jax.tree_util.tree_leaves(g))
