"""configs/cifar10.py keeps its run-length rules in every variant: 10% warmup, a cosine that ends at final_lr,
an EMA at its end value by mid-run, and all three encoders scored (target, online, init). No compile."""

import os

import pytest

from hjepa_jax import config as config_lib
from hjepa_jax import experiment, optim
from hjepa_jax.platform import Platform

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CPU = Platform(backend="cpu", device_kind="cpu", num_devices=1, process_count=1)


@pytest.mark.parametrize("arg", ["cpu", "cpu,levels=1,epochs=2", "levels=3"])
def test_recipe_schedules_fit_its_length(arg):
  cfg = config_lib.load_config(os.path.join(ROOT, "configs", "cifar10.py"), arg)
  cfg.data.datasets, cfg.data.eval_dataset, cfg.data.eval_split_test = ("digits",), "digits", "test"
  exp, _ = experiment.prepare(cfg, CPU)
  spec = exp.step_spec
  total, o = exp.total_steps, spec.optim
  assert total == round(cfg.total_epochs * exp.steps_per_epoch)
  assert abs(o.warmup_steps - 0.1 * total) <= 1
  assert len(spec.hierarchy.weights) == cfg.loss.num_hierarchies
  lr, ema = optim.lr_schedule(o), optim.ema_schedule(o)
  assert float(lr(total)) == pytest.approx(o.final_lr) and float(lr(o.warmup_steps)) == pytest.approx(o.lr)
  assert float(ema(0)) == pytest.approx(0.99) and float(ema(total // 2 + 1)) == pytest.approx(0.999)
  assert exp.eval.encoders == ("target", "online", "init") and exp.eval.every == exp.steps_per_epoch
