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

  from hjepa_jax import experiment, platform  # noqa: E402
  from hjepa_jax.optim import make_optimizer  # noqa: E402
  from hjepa_jax.train_step import init_state, make_train_step  # noqa: E402

  cfg = _CONFIG.value
  plat = platform.detect()
  # The run's own step (model, masks, losses, accumulation) with schedules over a nominal 1000 steps.
  spec = experiment.step_spec(cfg, total_steps=1000, warmup_steps=10)
  model = spec.model
  init_rng, step_rng = experiment.init_rngs(cfg.seed)
  params = model.init(init_rng)
  tx = make_optimizer(spec.optim, params)
  state = init_state(model, tx, init_rng)
  batch = cfg.data.batch_size * cfg.optim.grad_accum_steps
  rs = np.random.RandomState(0)
  size = cfg.data.image_size
  batch_data = {"image": rs.randint(0, 256, (batch, size, size, 3), np.uint8)}
  if spec.views.enabled:  # the view-level losses read a second view and the local crops
    batch_data["image_view2"] = rs.randint(0, 256, (batch, size, size, 3), np.uint8)
    if spec.views.num_local:
      local = cfg.data.multicrop.local_size
      batch_data["local"] = rs.randint(0, 256, (batch, spec.views.num_local, local, local, 3), np.uint8)
  step = jax.jit(make_train_step(spec, tx), donate_argnums=(0,) if plat.donate else ())
  t0 = time.perf_counter()
  state, metrics = step(state, batch_data, step_rng)
  jax.block_until_ready(metrics)
  compile_s = time.perf_counter() - t0
  t0 = time.perf_counter()
  for _ in range(_STEPS.value):
    state, metrics = step(state, batch_data, step_rng)
  jax.block_until_ready(metrics)
  per_step = (time.perf_counter() - t0) / _STEPS.value
  n_params = sum(x.size for x in jax.tree_util.tree_leaves(params))
  print(
    f"machine: {py_platform.processor() or py_platform.machine()}, {os.cpu_count()} cpus, "
    f"backend {plat.backend} ({plat.device_kind}) x {plat.num_devices}"
  )
  print(
    f"model: {model.encoder.width}w x {model.encoder.depth}d, patch {model.encoder.patch_size}, "
    f"image {cfg.data.image_size}, {n_params:,} params, dtype {cfg.model.dtype}, remat {cfg.model.remat}"
  )
  print(
    f"batch {batch} ({cfg.data.batch_size} x {cfg.optim.grad_accum_steps}): first call (compile + step) "
    f"{compile_s:.1f} s; {per_step:.3f} s/step over {_STEPS.value} steps = {batch / per_step:.1f} images/s"
  )


if __name__ == "__main__":
  app.run(main)
