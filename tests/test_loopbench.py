"""The loop benchmark (hjepa_jax/loopbench.py): every variant measured on the run's own step, and the fused
variant computes exactly the update of augmentation then step."""

import jax
import numpy as np
import pytest

from hjepa_jax import data as data_lib
from hjepa_jax import experiment, loopbench, stepbench
from hjepa_jax import platform as platform_lib
from hjepa_jax.config import ConfigError
from hjepa_jax.train_step import init_state
from tests._core import tiny_config


def _cfg():
  return tiny_config(**{"data.pipeline": "device"})


def test_every_variant_is_timed_with_the_loop_phases(tmp_path):
  lines = []
  r = loopbench.measure_loop(_cfg(), steps=2, warmup=1, trace_dir=str(tmp_path / "trace"), log=lines.append)
  assert set(r["ms"]) == set(loopbench.VARIANTS) and all(v > 0 for v in r["ms"].values())
  assert set(r["phases_ms"]) == {"loop", "fused_loop"}
  assert all(set(p) == {"input", "step", "flag"} and p["step"] > 0 for p in r["phases_ms"].values())
  assert r["compile_s"] > 0 and r["fused_compile_s"] > 0 and len(lines) == len(loopbench.VARIANTS)
  assert any(p.name.endswith(".xplane.pb") for p in (tmp_path / "trace").rglob("*"))


def test_the_fused_program_computes_augmentation_then_step():
  cfg = _cfg()
  plat = platform_lib.detect()
  spec = experiment.step_spec(cfg, total_steps=stepbench.NOMINAL_STEPS, warmup_steps=stepbench.NOMINAL_WARMUP)
  init_rng, step_rng = experiment.init_rngs(cfg.seed)
  step, tx = stepbench.step_program(cfg, spec, plat)
  it = data_lib.make_device_iterator(cfg.data, seed=cfg.seed, num_views=2 if spec.views.enabled else 1)
  fused = loopbench.fused_step(step, it, donate=False)
  init = jax.jit(lambda r: init_state(spec.model, tx, r))
  apart, together = init(init_rng), init(init_rng)
  for s in range(2):
    apart, m_apart = step(apart, it.batch(s), step_rng)
    together, m_together = fused(together, it.images, it.indices(s), step_rng)
  np.testing.assert_allclose(float(m_apart["loss"]), float(m_together["loss"]), rtol=1e-5)
  for a, b in zip(jax.tree_util.tree_leaves(apart["params"]), jax.tree_util.tree_leaves(together["params"])):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_only_the_device_path_and_known_variants():
  with pytest.raises(ConfigError, match="device input path"):
    loopbench.measure_loop(tiny_config(), steps=1)
  with pytest.raises(ConfigError, match="unknown loop variants"):
    loopbench.measure_loop(_cfg(), steps=1, variants=("nope",))
