"""train_step: one compile, learning, gradient accumulation, NaN guard, optimizer details."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hjepa_jax import experiment, optim
from hjepa_jax.config import ConfigError
from hjepa_jax.platform import Platform
from tests._core import core_config, synthetic_images, tiny_config, tiny_setup

CPU = Platform(backend="cpu", device_kind="cpu", num_devices=1, process_count=1)


def test_compiles_once_and_loss_falls():
  spec, _, state, step_fn = tiny_setup(total_steps=50, warmup_steps=5, **{"optim.lr": 2e-3})
  traces = []

  def counted(*args):
    traces.append(1)
    return step_fn(*args)

  step = jax.jit(counted, donate_argnums=0)
  data = synthetic_images(64)
  rng = jax.random.PRNGKey(0)
  losses = []
  for i in range(50):
    batch = {"image": data[(i % 4) * 16 : (i % 4 + 1) * 16]}
    state, metrics = step(state, batch, rng)
    losses.append(float(metrics["loss"]))
    if i == 9:
      assert len(traces) == 1, "train_step recompiled within 10 steps"
  assert len(traces) == 1
  assert int(state["step"]) == 50
  assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:3]), losses
  expected = {
    "loss",
    "grad_norm",
    "lr",
    "weight_decay",
    "ema_momentum",
    "feature_variance",
    "feature_variance_target",
    "context_tokens",
    "nonfinite",
    "loss_level_0",
    "loss_level_1",
    "pos_floor",
    "pos_floor_level_0",
    "pos_floor_level_1",
  }
  assert expected <= set(metrics)
  assert float(metrics["nonfinite"]) == 0.0


def test_grad_accumulation_equals_one_large_batch():
  # A large Adam eps makes the update proportional to the gradient, so the comparison measures
  # the gradients themselves (Adam's first steps would amplify float noise in near-zero grads).
  images = {"image": synthetic_images(16)}
  rng = jax.random.PRNGKey(1)
  outs = []
  for k in (1, 4):
    _, _, state, step_fn = tiny_setup(
      warmup_steps=0,
      **{"optim.grad_accum_steps": k, "data.batch_size": 16 // k, "optim.lr": 1e-2, "optim.eps": 1.0},
    )
    step = jax.jit(step_fn)
    for _ in range(2):
      state, metrics = step(state, images, rng)
    outs.append((state, metrics))
  (s1, m1), (s4, m4) = outs
  np.testing.assert_allclose(m1["loss"], m4["loss"], rtol=1e-5)
  np.testing.assert_allclose(m1["grad_norm"], m4["grad_norm"], rtol=1e-4)
  jax.tree_util.tree_map(
    lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7), s1["params"], s4["params"]
  )


def test_nonfinite_update_is_reported_and_not_applied():
  _, _, state, step_fn = tiny_setup()
  state["params"]["predictor"]["head"]["bias"] = state["params"]["predictor"]["head"]["bias"].at[0].set(jnp.nan)
  before = jax.device_get(state)
  new, metrics = jax.jit(step_fn)(state, {"image": synthetic_images(4)}, jax.random.PRNGKey(0))
  assert float(metrics["nonfinite"]) == 1.0
  # The step still counts (a checkpoint's name is its state's step); nothing else moves, bit for bit.
  assert int(new["step"]) == 1
  jax.tree_util.tree_map(np.testing.assert_array_equal, dict(jax.device_get(new), step=0), dict(before, step=0))


def test_weight_decay_mask_excludes_biases_norms_and_tokens():
  _, _, state, _ = tiny_setup()
  mask = optim.decay_mask(state["params"])
  assert mask["encoder"]["patch_embed"]["kernel"] is True
  assert mask["encoder"]["transformer"]["block_0"]["qkv"]["kernel"] is True
  assert mask["encoder"]["transformer"]["block_0"]["qkv"]["bias"] is False
  assert mask["encoder"]["transformer"]["norm"]["scale"] is False
  assert mask["predictor"]["mask_token"] is False


def test_schedules_follow_ijepa():
  cfg = core_config(**{"optim.lr": 1e-3, "optim.start_lr": 1e-4, "optim.final_lr": 1e-6})
  spec = experiment.optim_spec(cfg, total_steps=100, warmup_steps=10)
  lr, wd, ema = optim.lr_schedule(spec), optim.wd_schedule(spec), optim.ema_schedule(spec)
  np.testing.assert_allclose([lr(0), lr(5), lr(10), lr(100)], [1e-4, 5.5e-4, 1e-3, 1e-6], rtol=1e-5)
  assert lr(50) < lr(20) < 1e-3
  np.testing.assert_allclose([wd(0), wd(50), wd(100)], [0.04, 0.22, 0.4], rtol=1e-5)
  np.testing.assert_allclose([ema(0), ema(50), ema(100)], [0.996, 0.998, 1.0], rtol=1e-6)


def test_warmup_is_capped_so_the_cosine_decay_always_happens():
  """A 600-step run asking for 10 epochs of warmup (1790 steps of digits at batch 8) gets 20% of the run."""
  cfg = tiny_config(**{"total_steps": 600, "optim.warmup_steps": None, "optim.warmup_epochs": 10.0})
  exp, _ = experiment.prepare(cfg, CPU)
  spec = exp.step_spec.optim
  assert exp.steps_per_epoch * 10 > 600 and spec.warmup_steps == 120
  lr = optim.lr_schedule(spec)
  np.testing.assert_allclose([lr(120), lr(600)], [spec.lr, spec.final_lr], rtol=1e-5)
  assert lr(60) < lr(120) and lr(360) < lr(120)
  short = tiny_config(**{"total_steps": 600, "optim.warmup_steps": 50})  # shorter than the cap: kept
  assert experiment.prepare(short, CPU)[0].step_spec.optim.warmup_steps == 50
  for bad in (1.0, -0.1):
    with pytest.raises(ConfigError, match="optim.warmup_max_fraction"):
      experiment.prepare(tiny_config(**{"optim.warmup_max_fraction": bad}), CPU)
