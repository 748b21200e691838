"""Every feature switch is wired end to end: flipping it changes the computation.

The switch list is generated from the config schema: every bool key of `base_config()` plus the
non-bool feature knobs in `hjepa_jax.switches.KNOBS`. A bool key that is neither a computation
switch (SWITCHES) nor an operational one with a named test (OPERATIONAL) fails
`test_every_switch_is_classified`, so a new switch cannot be added untested. Each flip goes through
`experiment.prepare` (config -> Experiment -> step) and the real input pipeline, as a run does.

Kinds (hjepa_jax/switches.py): "changes" -> the first loss on the same images (or the images, for
data switches) differs; "exact" -> the loss agrees but the lowered train_step differs; "platform" ->
the CUDA-only value is refused on CPU with an error naming the key. Switches are compared on the
forward loss (one small compile each); that the model trains is shown on the base config and on the
aggressive config with every phase 1-3 feature on at once.
"""

import os

import jax
import numpy as np
import pytest

from hjepa_jax import config as config_lib
from hjepa_jax import data as data_lib
from hjepa_jax import experiment
from hjepa_jax.config import ConfigError
from hjepa_jax.optim import make_optimizer
from hjepa_jax.platform import Platform
from hjepa_jax.switches import KNOBS, SWITCHES, flip_overrides
from hjepa_jax.train_step import LOSS_METRICS, batch_loss, init_state, make_train_step
from tests._core import tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CPU = Platform(backend="cpu", device_kind="cpu", num_devices=1, process_count=1)
TRAIN_STEPS = 6
RNG = jax.random.PRNGKey(1)

# Bool keys that change what a run does around the computation, and the test that shows it.
OPERATIONAL = {
  "log_mask_images": "tests/test_train_app.py::test_mask_images_only_when_asked",
  "data.download": "tests/test_data_sources.py::test_download_without_network_fails_fast",
}


def _setup(overrides):
  """(step spec, optimizer, initial state, one real batch of the input pipeline) for tiny_config(**overrides)."""
  exp, reader = experiment.prepare(tiny_config(**overrides), CPU)
  spec = exp.step_spec
  tx = make_optimizer(spec.optim, jax.eval_shape(spec.model.init, jax.random.PRNGKey(0)))
  state = init_state(spec.model, tx, jax.random.PRNGKey(0))
  it = data_lib.make_pretrain_iterator(
    reader.data, seed=0, batch_size=exp.global_batch, num_views=2 if spec.views.enabled else 1
  )
  batch = {k: v for k, v in next(it).items() if k in ("image", "image_view2", "local")}
  it.close()
  return spec, tx, state, batch


def _first_loss(overrides):
  """The loss the first update would differentiate (forward only: a fraction of a train_step's compile),
  the batch, and the train step's lowered program on demand (lowering does not compile)."""
  spec, tx, state, batch = _setup(overrides)
  loss, _ = jax.jit(lambda s, b, r: batch_loss(spec, s, b, r))(state, batch, RNG)
  return {
    "loss": float(loss),
    "batch": batch,
    "lowered": lambda: jax.jit(make_train_step(spec, tx)).lower(state, batch, RNG).as_text(),
  }


def _train(overrides, steps):
  """Losses and last metrics of `steps` real updates on one fixed batch."""
  spec, tx, state, batch = _setup(overrides)
  step = jax.jit(make_train_step(spec, tx))
  losses = []
  for _ in range(steps):
    state, metrics = step(state, batch, RNG)
    losses.append(float(metrics["loss"]))
    assert float(metrics["nonfinite"]) == 0.0, metrics
  return losses, jax.device_get(metrics)


@pytest.fixture(scope="module")
def base():
  return _first_loss({})


def _leaves():
  return dict(config_lib._leaves(config_lib.base_config()))


def test_every_switch_is_classified():
  leaves = _leaves()
  bools = {k for k, v in leaves.items() if isinstance(v, bool)}
  unclassified = bools - set(SWITCHES) - set(OPERATIONAL)
  assert not unclassified, f"bool config keys with no switch test: {sorted(unclassified)}"
  assert KNOBS <= set(SWITCHES) and set(SWITCHES) <= set(leaves)
  for key, where in OPERATIONAL.items():
    path, name = where.split("::")
    with open(os.path.join(ROOT, path)) as f:
      assert f"def {name}(" in f.read(), f"{key}: {where} does not exist"


def test_base_trains():
  losses, _ = _train({}, TRAIN_STEPS)
  assert all(np.isfinite(losses)) and losses[-1] < losses[0], losses


@pytest.mark.parametrize("key", sorted(SWITCHES))
def test_flipping_changes_the_computation(key, base):
  kind, _ = SWITCHES[key]
  overrides = flip_overrides(tiny_config(), key)
  if kind == "platform":
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
      experiment.prepare(tiny_config(**overrides), CPU)
    return
  flipped = _first_loss(overrides)
  first, base_first = flipped["loss"], base["loss"]
  assert np.isfinite(first), f"{key}: loss {first}"
  if kind == "exact":
    np.testing.assert_allclose(first, base_first, rtol=2e-3)
    assert flipped["lowered"]() != base["lowered"](), f"{key}: same program after flipping"
  else:
    if key.startswith("data."):  # a data switch changes the images the step sees
      assert set(flipped["batch"]) != set(base["batch"]) or not np.array_equal(
        flipped["batch"]["image"], base["batch"]["image"]
      ), f"{key}: same batch"
    assert abs(first - base_first) > 1e-6 * max(1.0, abs(base_first)), f"{key}: loss unchanged ({first})"


def test_added_losses_report_their_metrics():
  on = {"loss.contrastive.weight": 0.5, "loss.vicreg.weight": 0.05, "data.multicrop.num_local": 2}
  _, m = _train({**on, "loss.sigreg.weight": 0.05}, 1)
  for name in LOSS_METRICS:
    assert np.isfinite(m[name]), name
  assert 0.0 <= m["contrastive_acc"] <= 1.0
  assert m["loss"] > m["jepa_loss"]


def test_aggressive_trains_on_generated_imagenet(aggressive_run):
  """configs/aggressive.py with every phase 1-3 feature on trains on an ImageNet-100 folder layout
  (tests/_aggressive_job.py, run in the background)."""
  facts = aggressive_run
  assert facts["global_batch"] == 16 and facts["fpn"] and facts["views"]
  last = facts["last"]
  assert "train/nonfinite_steps" not in last
  assert np.isfinite(last["train/loss"]) and 0.0 <= last["train/contrastive_acc"] <= 1.0
  assert "3" in facts["checkpoints"]
