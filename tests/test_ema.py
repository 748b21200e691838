"""Target encoder = closed-form EMA of the context encoder under each EMA schedule; no gradient reaches it."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hjepa_jax import experiment, optim
from hjepa_jax.config import ConfigError
from hjepa_jax.train_step import loss_fn
from hjepa_jax.masks import sample_masks
from tests._core import core_config, synthetic_images, tiny_setup

EMA = {"ema.start": 0.5, "ema.end": 0.9}


def _momenta(schedule, ramp, n):
  """The momenta of steps 0..n-1, written out: linear or cosine 0.5 -> 0.9 over `ramp` steps, then 0.9."""
  t = [min(i / ramp, 1.0) for i in range(n)]
  if schedule == "linear":
    return [0.5 + 0.4 * x for x in t]
  return [0.9 - 0.4 * 0.5 * (1 + math.cos(math.pi * x)) for x in t]


@pytest.mark.parametrize("schedule, ramp_fraction", [("linear", 1.0), ("cosine", 0.2)])
def test_target_equals_closed_form_ema(schedule, ramp_fraction):
  total, n = 10, 4
  spec, _, state, step_fn = tiny_setup(
    total_steps=total,
    warmup_steps=0,
    **{"optim.lr": 1e-2, **EMA, "ema.schedule": schedule, "ema.ramp_fraction": ramp_fraction},
  )
  step_fn = jax.jit(step_fn)
  images = {"image": synthetic_images(8)}
  leaf = lambda s, key: np.asarray(jax.tree_util.tree_leaves(s[key] if key == "target" else s["params"]["encoder"])[3])
  t0 = leaf(state, "target")
  online = []
  for _ in range(n):
    state, _ = step_fn(state, images, jax.random.PRNGKey(0))
    online.append(leaf(state, "online"))
  m = _momenta(schedule, round(ramp_fraction * total), n)
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


def test_ema_schedules_fit_any_run_length():
  """A ramp over a fraction of the run, then the end value; cosine stays near the start longer; start == end is
  constant."""

  def ema(**overrides):
    return optim.ema_schedule(
      experiment.optim_spec(core_config(**{**EMA, **overrides}), total_steps=100, warmup_steps=0)
    )

  linear, cosine = ema(**{"ema.ramp_fraction": 0.5}), ema(**{"ema.schedule": "cosine", "ema.ramp_fraction": 0.5})
  np.testing.assert_allclose([linear(s) for s in (0, 25, 50, 100)], [0.5, 0.7, 0.9, 0.9], rtol=1e-6)
  np.testing.assert_allclose([cosine(s) for s in (0, 25, 50, 100)], [0.5, 0.7, 0.9, 0.9], rtol=1e-6)
  assert cosine(10) < linear(10) and cosine(40) > linear(40)
  constant = ema(**{"ema.start": 0.99, "ema.end": 0.99})
  np.testing.assert_allclose([constant(s) for s in (0, 50, 100)], 0.99, rtol=1e-7)
  whole = ema()  # I-JEPA: linear over the whole run
  np.testing.assert_allclose([whole(0), whole(50), whole(100)], [0.5, 0.7, 0.9], rtol=1e-6)
  for key, value in (("ema.schedule", "step"), ("ema.ramp_fraction", 0.0), ("ema.ramp_fraction", 1.5)):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
      experiment.optim_spec(core_config(**{key: value}), total_steps=100, warmup_steps=0)
