"""Hierarchy designs (loss.hierarchy, hjepa_jax/levels.py): each changes what levels >= 1 compute, keeps level 0
and the pairing (init, masks) of a comparison, compiles once, and is exact under accumulation, remat and a
sharded batch."""

import os

import jax
import numpy as np
import pytest

from hjepa_jax import experiment, levels, plan
from hjepa_jax.config import ConfigError
from hjepa_jax.evaluation.features import make_feature_fn
from hjepa_jax.train_step import batch_loss, step_inputs
from hjepa_jax.platform import Platform
from tests._core import core_config, synthetic_images, tiny_config, tiny_setup

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RNG = jax.random.PRNGKey(3)
BATCH = {"image": synthetic_images(8)}
DESIGNS = {"deep": {"loss.hierarchy": "deep"}, "multiscale": {"loss.hierarchy": "multiscale"}}


def _first(**overrides):
  """(spec, state, loss, aux) of the first update's forward pass on BATCH."""
  spec, _, state, _ = tiny_setup(**{"data.batch_size": 8, **overrides})
  loss, aux = jax.jit(lambda s: batch_loss(spec, s, BATCH, RNG))(state)
  return spec, state, float(loss), jax.device_get(aux)


@pytest.fixture(scope="module")
def pooled():
  return _first()


@pytest.mark.parametrize("design", sorted(DESIGNS))
def test_design_changes_level_one_and_keeps_level_zero_and_init(design, pooled):
  _, base_state, base_loss, base_aux = pooled
  spec, state, loss, aux = _first(**DESIGNS[design])
  assert spec.hierarchy.design == design
  # Paired comparisons: the encoder, predictor and target start from the same values in every design ...
  for key in ("encoder", "predictor"):
    jax.tree_util.tree_map(np.testing.assert_array_equal, state["params"][key], base_state["params"][key])
  # ... level 0 is I-JEPA's loss on the same masks, and only the levels >= 1 differ.
  np.testing.assert_allclose(aux["loss_levels"][0], base_aux["loss_levels"][0], rtol=1e-6)
  np.testing.assert_allclose(aux["pos_floor_levels"][0], base_aux["pos_floor_levels"][0], rtol=1e-6)
  assert abs(aux["loss_levels"][1] - base_aux["loss_levels"][1]) > 1e-4, (design, aux["loss_levels"])
  assert abs(loss - base_loss) > 1e-5
  assert np.all(np.isfinite(aux["pos_floor_levels"])) and aux["pos_floor_levels"].shape == (2,)


def test_deep_has_a_predictor_per_level_reading_the_configured_block():
  spec, state, _, aux_top = _first(**{"loss.hierarchy": "deep", "loss.deep.blocks": (2,)})
  assert spec.model.level_blocks == (2, 2) and set(state["params"]["levels"]) == {"level_1"}
  _, _, _, aux_low = _first(**{"loss.hierarchy": "deep", "loss.deep.blocks": (1,)})
  assert abs(aux_top["loss_levels"][1] - aux_low["loss_levels"][1]) > 1e-4
  deeper, _, _, _ = _first(**{"loss.hierarchy": "deep", "loss.deep.predictor_depth": 2})
  assert deeper.model.level_predictors[0].depth == 2 and spec.model.level_predictors[0].depth == 1
  assert levels.default_blocks(4, 2) == (4, 2) and levels.default_blocks(12, 3) == (12, 8, 4)


def test_multiscale_draws_fewer_larger_blocks_per_level_and_keeps_level_zero_masks():
  over = {"loss.hierarchy": "multiscale", "loss.num_hierarchies": 3, "loss.hierarchy_weights": (1.0, 0.5, 0.25)}
  spec, _, _, aux = _first(**over)
  base = spec.masks
  (m1, m2) = spec.hierarchy.level_masks
  assert (m1.num_targets, m2.num_targets) == (base.num_targets // 2, base.num_targets // 4)
  assert m1.target_scale == tuple(2 * s for s in base.target_scale) and m2.target_scale == (0.6, 0.8)
  assert m2.target_capacity > m1.target_capacity > base.target_capacity
  _, masks, _ = step_inputs(spec, BATCH, RNG)
  pooled_spec, *_ = tiny_setup(**{"data.batch_size": 8})
  _, pooled_masks, _ = step_inputs(pooled_spec, BATCH, RNG)
  for key, value in pooled_masks.items():
    np.testing.assert_array_equal(masks[key], value)
  assert [lm["target_idx"].shape[1:] for lm in masks["levels"]] == [(2, m1.target_capacity), (1, m2.target_capacity)]
  _, _, _, wider = _first(**over, **{"loss.multiscale.scale_growth": 1.5})
  assert abs(wider["loss_levels"][1] - aux["loss_levels"][1]) > 1e-5


@pytest.mark.parametrize("design", sorted(DESIGNS))
def test_one_compile_and_accumulation_is_exact(design, levels_job):
  """Two micro-batches give the update of the whole batch, joint layout and remat on, compiled once
  (tests/_levels_job.py, run in the background)."""
  facts = levels_job["accumulation"][design]
  assert facts["compiles"] == [1, 1]
  one, two = facts["1"], facts["2"]
  np.testing.assert_allclose(one["loss"], two["loss"], rtol=1e-4)
  np.testing.assert_allclose(one["loss_level_1"], two["loss_level_1"], rtol=1e-4)
  assert {"loss_level_1", "pos_floor_level_1"} <= set(one)


@pytest.mark.parametrize(
  "overrides, key",
  [
    ({"loss.hierarchy": "tree"}, "loss.hierarchy"),
    ({"loss.hierarchy": "deep", "loss.num_hierarchies": 1, "loss.hierarchy_weights": (1.0,)}, "loss.hierarchy"),
    ({"loss.hierarchy": "deep", "model.fpn.enabled": True}, "model.fpn.enabled"),
    ({"loss.deep.blocks": (3,)}, "loss.deep.blocks"),
    ({"loss.deep.blocks": (1, 1)}, "loss.deep.blocks"),
    ({"loss.deep.predictor_depth": 0}, "loss.deep.predictor_depth"),
    ({"loss.multiscale.scale_growth": 0.5}, "loss.multiscale.scale_growth"),
    ({"loss.hierarchy": "multiscale", "loss.multiscale.scale_growth": 8.0}, "loss.multiscale.scale_growth"),
  ],
)
def test_bad_design_values_name_their_key(overrides, key):
  with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
    experiment.step_spec(core_config(**overrides), 10, 1)


def test_multiscale_room_is_checked_before_capacities_compile(monkeypatch):
  def compiles(*_):
    raise AssertionError("capacities were sized (a compile) before the multiscale check")

  monkeypatch.setattr(experiment, "_with_capacities", compiles)
  with pytest.raises(ConfigError, match=r"loss\.multiscale\.scale_growth"):
    experiment.step_spec(core_config(**{"loss.hierarchy": "multiscale", "loss.multiscale.scale_growth": 8.0}), 10, 1)


def test_tap_features_read_each_levels_own_block():
  images = synthetic_images(4)
  deep = experiment.model(core_config(**{"loss.hierarchy": "deep", "loss.deep.blocks": (1,)}))
  pooled = experiment.model(core_config())
  params = deep.init(jax.random.PRNGKey(0))
  feats = make_feature_fn(deep, ("level1", "tap1"))(params["encoder"], images)
  same = make_feature_fn(pooled, ("level1", "tap1"))(params["encoder"], images)
  assert feats["tap1"].shape == feats["level1"].shape == (4, 16 * 32)
  assert not np.allclose(feats["tap1"], same["tap1"], atol=1e-3)  # block 1, not the output
  np.testing.assert_allclose(feats["level1"], same["level1"])
  with pytest.raises(ValueError, match="levels 0..1"):
    make_feature_fn(deep, ("tap2",))


def test_planner_counts_each_designs_work():
  """The planner's model FLOPs (launch/plan.py) include a design's extra predictor or context pass."""
  cpu = Platform(backend="cpu", device_kind="cpu", num_devices=1, process_count=1)
  flops = {d: plan.model_flops(tiny_config(**{"loss.hierarchy": d}), cpu, 64) for d in ("pooled", *DESIGNS)}
  assert flops["deep"] > 1.05 * flops["pooled"] and flops["multiscale"] > 1.2 * flops["pooled"], flops


@pytest.mark.parametrize("design", sorted(DESIGNS))
def test_designs_on_two_devices_match_one(design, levels_job):
  """One update with the batch sharded over two forced CPU devices equals one device's (tests/_levels_job.py)."""
  assert levels_job["devices"] == 2
  one, two = levels_job["sharded"][design]["one"], levels_job["sharded"][design]["two"]
  np.testing.assert_allclose(one, two, rtol=1e-5)
