"""Times the jitted train_step on this machine and prints what it measured.

    python launch/benchmark_step.py --config=configs/conservative.py --config.data.batch_size=8 --steps=5

Synthetic uint8 images (no data loading): compile time, the compiled step's FLOPs (XLA cost
analysis) and buffer sizes (XLA memory analysis), the median of `--steps` timed steps after one
warm-up step, and the process's peak memory (device peak where the backend reports it).
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
  t0 = time.perf_counter()
  step = (
    jax.jit(make_train_step(spec, tx), donate_argnums=(0,) if plat.donate else ())
    .lower(state, batch_data, step_rng)
    .compile()
  )
  compile_s = time.perf_counter() - t0
  cost = step.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost  # a list on older jax
  mem = step.memory_analysis()
  times = []
  for _ in range(_STEPS.value + 1):  # the first (warm-up) step is not counted
    t0 = time.perf_counter()
    state, metrics = step(state, batch_data, step_rng)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - t0)
  per_step = float(np.median(times[1:]))
  n_params = sum(x.size for x in jax.tree_util.tree_leaves(params))
  gib = 2.0**30
  print(
    f"machine: {py_platform.processor() or py_platform.machine()}, {os.cpu_count()} cpus, "
    f"backend {plat.backend} ({plat.device_kind}) x {plat.num_devices}"
  )
  print(
    f"model: {model.encoder.width}w x {model.encoder.depth}d, patch {model.encoder.patch_size}, "
    f"image {cfg.data.image_size}, {n_params:,} params, dtype {cfg.model.dtype}, remat {cfg.model.remat}"
  )
  print(
    f"masks: {spec.masks.context_capacity} context / {spec.masks.target_capacity} target slots "
    f"(capacity {cfg.mask.capacity}), predictor layout {cfg.model.predictor.layout}"
  )
  print(
    f"compiled step: {cost.get('flops', float('nan')) / 1e9:.1f} GFLOP; XLA buffers: temp "
    f"{mem.temp_size_in_bytes / gib:.2f} GiB, arguments {mem.argument_size_in_bytes / gib:.2f} GiB, "
    f"outputs {mem.output_size_in_bytes / gib:.2f} GiB"
  )
  print(
    f"batch {batch} ({cfg.data.batch_size} x {cfg.optim.grad_accum_steps}): compile {compile_s:.1f} s; "
    f"median {per_step:.3f} s/step over {_STEPS.value} steps (after 1 warm-up) = {batch / per_step:.1f} images/s; "
    f"peak memory {platform.peak_memory_mb() / 1024:.2f} GiB"
  )


if __name__ == "__main__":
  app.run(main)
