"""Measures pretraining-pipeline throughput on this machine.

    python -m hjepa_jax.data.benchmark --cifar10_dir /path/to/cifar-10-batches-py

Runs the real pipeline (local CIFAR-10, I-JEPA random-resized crop) at each
requested output size and prints images per second, so the number can be
compared with the model's step rate to see whether input is the bottleneck.
"""

import argparse
import os
import platform
import time

from hjepa_jax.data import cifar_local, default_data_config


def _machine() -> str:
  cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  load = " load avg %.1f %.1f %.1f" % os.getloadavg() if hasattr(os, "getloadavg") else ""
  return f"{platform.platform()} {platform.machine()} python {platform.python_version()}, {cores} usable cores{load}"


def measure(data_cfg, *, seconds: float, warmup_batches: int = 3) -> float:
  """Images per second delivered by make_pretrain_iterator after warm-up."""
  from hjepa_jax.data.pipeline import make_pretrain_iterator

  it = make_pretrain_iterator(data_cfg, seed=0)
  for _ in range(warmup_batches):
    next(it)
  images = 0
  start = time.perf_counter()
  while time.perf_counter() - start < seconds:
    images += next(it)["image"].shape[0]
  rate = images / (time.perf_counter() - start)
  it.close()
  return rate


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--cifar10_dir", default=os.environ.get(cifar_local.ENV_VAR), help="cifar-10-batches-py folder")
  parser.add_argument("--sizes", type=int, nargs="+", default=[32, 224], help="output image sizes")
  parser.add_argument("--batch_size", type=int, default=256)
  parser.add_argument("--seconds", type=float, default=10.0, help="measurement time per size")
  parser.add_argument("--horizontal_flip", action="store_true")
  parser.add_argument("--deit3_strength", type=float, default=0.0)
  args = parser.parse_args(argv)

  import tensorflow as tf

  print(f"machine: {_machine()}; tensorflow {tf.__version__}")
  for size in args.sizes:
    cfg = default_data_config()
    cfg.datasets = ("cifar10_local@train",)
    cfg.cifar10_dir = args.cifar10_dir
    cfg.image_size = size
    cfg.batch_size = args.batch_size
    cfg.horizontal_flip = args.horizontal_flip
    cfg.deit3_strength = args.deit3_strength
    rate = measure(cfg, seconds=args.seconds)
    print(
        f"cifar10_local -> {size} px, batch {args.batch_size}, crop_scale {tuple(cfg.crop_scale)}, "
        f"flip {cfg.horizontal_flip}, deit3 {cfg.deit3_strength}: {rate:,.0f} images/s"
    )


if __name__ == "__main__":
  main()
