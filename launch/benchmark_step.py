"""Times the jitted train_step on this machine and prints what it measured.

    python launch/benchmark_step.py --config=configs/conservative.py --config.data.batch_size=8 --steps=5

Synthetic uint8 images (no data loading): compile time, then the mean of `--steps` timed steps.
"""
import os
import platform as py_platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=True)
_STEPS = flags.DEFINE_integer("steps", 5, "Timed steps after the compile.")
flags.mark_flags_as_required(["config"])


def main(argv):
  del argv
  import jax  # noqa: E402
  import numpy as np  # noqa: E402

  from hjepa_jax import platform, train  # noqa: E402
  from hjepa_jax.masks import MaskSpec  # noqa: E402
  from hjepa_jax.model import build_model  # noqa: E402
  from hjepa_jax.optim import OptimSpec, make_optimizer  # noqa: E402
  from hjepa_jax.train_step import StepSpec, init_state, make_train_step  # noqa: E402

  cfg = _CONFIG.value
  plat = platform.detect()
  model = build_model(train.model_spec(cfg.model, cfg.data.image_size))
  spec = StepSpec(model, MaskSpec(grid=model.grid, context_fraction=cfg.mask.context_fraction),
                  OptimSpec(total_steps=1000, warmup_steps=10, lr=cfg.optim.lr),
                  hierarchy_weights=tuple(cfg.loss.hierarchy_weights), grad_accum_steps=cfg.optim.grad_accum_steps)
  params = model.init(jax.random.PRNGKey(0))
  tx = make_optimizer(spec.optim, params)
  state = init_state(model, tx, jax.random.PRNGKey(0))
  batch = cfg.data.batch_size * cfg.optim.grad_accum_steps
  images = np.random.RandomState(0).randint(0, 256, (batch, cfg.data.image_size, cfg.data.image_size, 3), np.uint8)
  step = jax.jit(make_train_step(spec, tx), donate_argnums=(0,) if plat.donate else ())
  t0 = time.perf_counter()
  state, metrics = step(state, {"image": images}, jax.random.PRNGKey(1))
  jax.block_until_ready(metrics)
  compile_s = time.perf_counter() - t0
  t0 = time.perf_counter()
  for _ in range(_STEPS.value):
    state, metrics = step(state, {"image": images}, jax.random.PRNGKey(1))
  jax.block_until_ready(metrics)
  per_step = (time.perf_counter() - t0) / _STEPS.value
  n_params = sum(x.size for x in jax.tree_util.tree_leaves(params))
  print(f"machine: {py_platform.processor() or py_platform.machine()}, {os.cpu_count()} cpus, "
        f"backend {plat.backend} ({plat.device_kind}) x {plat.num_devices}")
  print(f"model: {model.encoder.width}w x {model.encoder.depth}d, patch {model.encoder.patch_size}, "
        f"image {cfg.data.image_size}, {n_params:,} params, dtype {cfg.model.dtype}, remat {cfg.model.remat}")
  print(f"batch {batch} ({cfg.data.batch_size} x {cfg.optim.grad_accum_steps}): first call (compile + step) "
        f"{compile_s:.1f} s; {per_step:.3f} s/step over {_STEPS.value} steps = {batch / per_step:.1f} images/s")


if __name__ == "__main__":
  app.run(main)
