"""The planner (hjepa_jax/plan.py): its prediction against a short real run, its FLOP figure against the
compiled update's cost analysis, a budget that cannot fit (warning and alternatives), the budget watch
a real run uses, the time_budget_hours key, and the budget recipes of the seed configs."""

import os
import re

import jax
import pytest

from hjepa_jax import config as config_lib
from hjepa_jax import experiment, plan, stepbench, train
from hjepa_jax.config import ConfigError
from hjepa_jax.optim import make_optimizer
from hjepa_jax.platform import Platform
from hjepa_jax.train_step import init_state, make_train_step
from tests._core import tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CPU = Platform(backend="cpu", device_kind="cpu", num_devices=1, process_count=1)
# The smoke recipe shrunk (tests/_core.py): 40 updates of 32 digits images, logged every 20 steps, so the last
# logged interval is 20 steps of steady state.
RUN = {"total_steps": 40, "log_every_steps": 20, "data.batch_size": 32, "log_mask_images": False}


def _planned(**kwargs):
  return plan.make_plan(tiny_config(**RUN), alternatives=False, **kwargs)


@pytest.fixture(scope="module")
def planned():
  """One compile and one timed step; the input pipeline is not timed (the slow test times it)."""
  return _planned(steps=1, input_batches=0)


@pytest.mark.slow
def test_predicted_epoch_time_is_within_1_5x_of_a_real_run(tmp_path):
  """The machine is shared (other jobs come and go), so a pair outside the band is measured once more."""
  ratios = []
  for attempt in range(2):
    p = _planned(steps=5, input_batches=3)
    assert p.input_images_per_s > 0 and "tfdata pipeline" in p.input_note
    last = train.train_and_evaluate(tiny_config(**RUN), str(tmp_path / f"run{attempt}"))
    real_epoch_s = 60 * last["train/epoch_time_min"]  # from the last logged interval, compile excluded
    ratios.append(p.epoch_s / real_epoch_s)
    if 1 / 1.5 <= ratios[-1] <= 1.5:
      return
  pytest.fail(f"predicted / real epoch time {ratios}, outside [1/1.5, 1.5] twice")


def test_flop_figure_is_the_compiled_updates_cost_analysis(planned):
  cfg, spec = tiny_config(**RUN), planned.exp.step_spec
  init_rng, step_rng = experiment.init_rngs(cfg.seed)
  tx = make_optimizer(spec.optim, jax.eval_shape(spec.model.init, init_rng))
  state = jax.eval_shape(lambda r: init_state(spec.model, tx, r), init_rng)
  batch = {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in stepbench.synthetic_batch(cfg, spec).items()}
  program = make_train_step(spec, tx, histogram_every=cfg.histogram_every_steps)  # the program the run compiles
  compiled = jax.jit(program, donate_argnums=(0,)).lower(state, batch, step_rng).compile()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  assert planned.flops == float(cost["flops"]) > 0
  lines = "\n".join(plan.report(planned))
  assert f"{planned.flops / 1e9:.1f} GFLOP" in lines and "MFU n/a" in lines  # no peak figure for a CPU
  assert planned.exp.steps_per_epoch == 1433 // 32 and "1,433 (counted from the data)" in lines


def test_a_budget_that_cannot_fit_says_by_how_much_and_what_would(planned):
  over = (planned.step["compile_s"] + planned.exp.total_steps * planned.step_s / 2) / 3600  # half the steps fit
  p = plan.Plan(**{**planned.__dict__, "budget_hours": over, "alternatives": []})
  p.alternatives = plan.fitting_alternatives(p, CPU)
  labels = [a[0] for a in p.alternatives]
  assert labels[0] == "fewer epochs" and "lower resolution" in labels
  for _, flags, total, fits in p.alternatives:
    assert flags.startswith("--config.") and total > 0 and fits == (total <= 3600 * p.budget_hours)
  text = "\n".join(plan.report(p))
  assert re.search(r"DOES NOT FIT the [\d.e-]+ h budget: predicted .*, .* over \(1\.\d\dx\)", text), text
  assert "  fewer epochs: --config.total_epochs=" in text and "  lower resolution: --config.data.image_size=" in text
  fits = plan.Plan(**{**planned.__dict__, "budget_hours": 2 * planned.total_s() / 3600})
  assert "fits the" in "\n".join(plan.report(fits)) and "DOES NOT FIT" not in "\n".join(plan.report(fits))


def test_chip_prediction_is_the_flop_count_over_the_peak():
  epoch_s, total_s, lines = plan.chip_prediction(4.16e12, 100, 10, "Apple M1 Max", "float32", 0.4)
  assert epoch_s == pytest.approx(10.0) and total_s == pytest.approx(100.0)  # 4.16 TFLOP / (10.4 TFLOP/s x 40%)
  assert "Apple M1 Max GPU: 10.4 TFLOP/s" in lines[0] and "newsroom" in lines[0]
  assert plan.chip_prediction(1e12, 1, 1, "cpu", "float32", 0.4)[0] is None


def test_budget_watch_warns_once_with_the_predicted_end():
  watch = plan.BudgetWatch(total_steps=1000, start_step=0, budget_hours=1.0, start_time=0.0, steps_per_epoch=100)
  assert watch.update(10, 600.0) is None and watch.predicted_end is None  # the compile: only sets the clock
  # 20 steps in 60 s: the other 970 take 2910 s, ending at 3570 s (inside the hour).
  assert watch.update(30, 660.0) is None and watch.predicted_end == pytest.approx(3570.0)
  warning = watch.update(40, 760.0)  # 30 steps in 160 s since step 10: the other 960 end at 5880 s
  assert watch.predicted_end == pytest.approx(760.0 + 960 * 160 / 30)
  assert "1:38:00 after its start: 0:38:00 over time_budget_hours=1" in warning and "0.188 steps/s" in warning
  assert "about 5.7 epochs fit (--config.total_epochs)" in warning  # (40 + 2840 s x 0.1875) / 100
  assert watch.update(50, 860.0) is None  # once
  assert plan.BudgetWatch(1000, 0, None, 0.0).update(10, 1.0) is None


def test_time_budget_hours_is_read_and_checked():
  exp, reader = experiment.prepare(tiny_config(time_budget_hours=8.0), CPU)
  assert exp.time_budget_hours == 8.0 and reader.unread() == []
  assert experiment.prepare(tiny_config(), CPU)[0].time_budget_hours is None
  with pytest.raises(ConfigError, match="time_budget_hours"):
    experiment.prepare(tiny_config(time_budget_hours=0.0), CPU)


@pytest.mark.parametrize("name", ["conservative", "aggressive"])
def test_budget_recipes_fit_the_seed_machine_by_their_own_arithmetic(name):
  path = os.path.join(ROOT, "configs", f"{name}.py")
  seed, budget = config_lib.load_config(path), config_lib.load_config(path, "budget=8h")
  module = _module(path)
  assert module.BUDGET_GFLOP_PER_IMAGE > 0 and module.SEED_IMAGES_PER_EPOCH > 0
  predicted_h = budget.total_epochs * module.SEED_IMAGES_PER_EPOCH * module.BUDGET_GFLOP_PER_IMAGE * 1e9
  predicted_h /= 10.4e12 * plan.PLANNING_UTILISATION * 3600
  assert predicted_h <= 8 * module.BUDGET_SHARE and budget.time_budget_hours == 8.0
  assert seed.total_epochs in (40.0, 50.0) and seed.time_budget_hours is None  # the seed recipe is unchanged
  with pytest.raises(ConfigError, match="budget"):
    config_lib.load_config(path, "budget=tonight")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["conservative", "aggressive"])
def test_budget_recipes_flop_constants_are_the_planners_count(name):
  """The constant each recipe's arithmetic uses is what the planner counts for it (a ViT-S lowering each)."""
  path = os.path.join(ROOT, "configs", f"{name}.py")
  module, cfg = _module(path), config_lib.load_config(path, "budget=8h")
  flops = plan.model_flops(cfg, CPU, module.SEED_IMAGES_PER_EPOCH)
  per_image = flops / 1e9 / (cfg.data.batch_size * cfg.optim.grad_accum_steps)
  assert cfg.data.image_size == module.BUDGET_IMAGE_SIZE
  assert per_image == pytest.approx(module.BUDGET_GFLOP_PER_IMAGE, rel=0.01)


def _module(path):
  import importlib.util  # pylint: disable=g-import-not-at-top

  spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module
