"""Measures the pretraining input pipeline's throughput on this machine and prints it.

    python launch/benchmark_input.py --cifar10_dir=../shared/data/cifar-10-batches-py --sizes=32,224
    python launch/benchmark_input.py --pipeline=device --sizes=224 --deit3_strength=1 --horizontal_flip

Runs the real pipeline (local CIFAR-10, I-JEPA random-resized crop) at each requested output size
and prints images per second, so the number can be compared with the model's step rate
(launch/benchmark_step.py) to see whether input is the bottleneck. `--pipeline=device` times the
device path (data.pipeline=device: batches made inside jit on the default JAX device, each batch
waited for), which needs no TensorFlow.
"""

import os
import platform as py_platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from hjepa_jax import data  # noqa: E402  (imports TensorFlow only once a pipeline is built)

_CIFAR10_DIR = flags.DEFINE_string(
  "cifar10_dir", os.environ.get("HJEPA_CIFAR10_DIR"), "cifar-10-batches-py folder (default: $HJEPA_CIFAR10_DIR)."
)
_SIZES = flags.DEFINE_list("sizes", ["32", "224"], "Output image sizes in pixels.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 256, "Batch size.")
_SECONDS = flags.DEFINE_float("seconds", 10.0, "Measurement time per size.")
_FLIP = flags.DEFINE_bool("horizontal_flip", False, "Random horizontal flips.")
_DEIT3 = flags.DEFINE_float("deit3_strength", 0.0, "DeiT-III 3-Augment strength (0: off).")
_PIPELINE = flags.DEFINE_enum("pipeline", "tfdata", ["tfdata", "device"], "The input path (data.pipeline).")


def _machine():
  cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  load = " load avg %.1f %.1f %.1f" % os.getloadavg() if hasattr(os, "getloadavg") else ""
  return (
    f"{py_platform.platform()} {py_platform.machine()} python {py_platform.python_version()}, "
    f"{cores} usable cores{load}"
  )


def measure(data_cfg, *, seconds, warmup_batches=3):
  """Images per second delivered by the configured input path after warm-up (device batches are waited for)."""
  if data_cfg.pipeline == "device":
    import jax  # pylint: disable=g-import-not-at-top

    it = data.make_device_iterator(data_cfg, seed=0)
    take = lambda: jax.block_until_ready(next(it))  # noqa: E731
  else:
    it = data.make_pretrain_iterator(data_cfg, seed=0)
    take = lambda: next(it)  # noqa: E731
  for _ in range(warmup_batches):
    take()
  images = 0
  start = time.perf_counter()
  while time.perf_counter() - start < seconds:
    images += take()["image"].shape[0]
  rate = images / (time.perf_counter() - start)
  it.close()
  return rate


def main(argv):
  del argv
  if _PIPELINE.value == "device":
    import jax  # pylint: disable=g-import-not-at-top

    print(f"machine: {_machine()}; jax {jax.__version__} on {jax.devices()[0].device_kind} x {jax.device_count()}")
  else:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    print(f"machine: {_machine()}; tensorflow {tf.__version__}")
  for size in (int(s) for s in _SIZES.value):
    cfg = data.default_data_config()
    cfg.datasets = ("cifar10_local@train",)
    cfg.cifar10_dir = _CIFAR10_DIR.value
    cfg.image_size = size
    cfg.batch_size = _BATCH_SIZE.value
    cfg.horizontal_flip = _FLIP.value
    cfg.deit3_strength = _DEIT3.value
    cfg.pipeline = _PIPELINE.value
    rate = measure(cfg, seconds=_SECONDS.value)
    print(
      f"{cfg.pipeline}: cifar10_local -> {size} px, batch {cfg.batch_size}, crop_scale {tuple(cfg.crop_scale)}, "
      f"flip {cfg.horizontal_flip}, deit3 {cfg.deit3_strength}: {rate:,.0f} images/s"
    )


if __name__ == "__main__":
  app.run(main)
