"""Times the jitted train_step on this machine and prints what it measured.

    python launch/benchmark_step.py --config=configs/conservative.py --config.data.batch_size=8 --steps=5

Synthetic uint8 images (no data loading), through hjepa_jax.stepbench: compile time, the compiled
step's FLOPs (XLA cost analysis) and buffer sizes (XLA memory analysis), the median of `--steps`
timed steps after one warm-up step, and the process's peak memory (the device's peak where the
backend reports it). launch/benchmark.py runs the accelerator grid; this is the one-config view.
"""

import os
import platform as py_platform
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags  # noqa: E402

from hjepa_jax import cli  # noqa: E402

_CONFIG = cli.define_config()
_STEPS = flags.DEFINE_integer("steps", 5, "Timed steps after the compile and one warm-up step.")
flags.mark_flags_as_required(["config"])


def main(argv):
  del argv
  from hjepa_jax import config as config_lib
  from hjepa_jax import experiment, platform, stepbench

  cfg = _CONFIG.value
  plat = platform.detect()
  with cli.user_errors():  # before the compile: the step's keys and their bounds
    config_lib.check_schema(cfg)
    spec = experiment.step_spec(cfg, stepbench.NOMINAL_STEPS, stepbench.NOMINAL_WARMUP)
  r = stepbench.measure_step(cfg, steps=_STEPS.value, warmup=0, plat=plat)  # the first call is untimed
  enc = spec.model.encoder
  gib = 2.0**30
  print(
    f"machine: {py_platform.processor() or py_platform.machine()}, {os.cpu_count()} cpus, "
    f"backend {plat.backend} ({plat.device_kind}) x {plat.num_devices}"
  )
  print(
    f"model: {enc.width}w x {enc.depth}d, patch {enc.patch_size}, image {r['image_size']}, {r['params']:,} params, "
    f"dtype {cfg.model.dtype}, remat {cfg.model.remat}"
  )
  print(
    f"masks: {spec.masks.context_capacity} context / {spec.masks.target_capacity} target slots "
    f"(mask.capacity={cfg.mask.capacity}), predictor layout {cfg.model.predictor.layout}"
  )
  print(
    f"compiled step: {(r['flops_per_step'] or float('nan')) / 1e9:.1f} GFLOP; XLA buffers: temp "
    f"{r.get('xla_temp_bytes', float('nan')) / gib:.2f} GiB, arguments {r.get('xla_argument_bytes', float('nan')) / gib:.2f} GiB"
  )
  print(
    f"batch {r['batch']} ({cfg.data.batch_size} x {cfg.optim.grad_accum_steps}): compile {r['compile_s']:.1f} s; "
    f"median {r['step_ms'] / 1e3:.3f} s/step over {r['timed_steps']} steps = {r['images_per_s']:.1f} images/s; "
    f"peak memory {platform.peak_memory_mb() / 1024:.2f} GiB"
  )


if __name__ == "__main__":
  from hjepa_jax.platform import tune_host

  tune_host()  # XLA:CPU flags and huge-page malloc (restarts once) where they help
  cli.run(main)
