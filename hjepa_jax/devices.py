"""What a device can do: peak dense FLOP/s by chip (with the source of each figure), MFU, and what memory reads.

MFU = model FLOPs per step / step time / the chip's peak dense FLOP/s for the compute dtype. Peaks are vendor
datasheet figures for dense math (sparsity figures halved). `float32` is the rate XLA's default precision gets
for float32 dots: TF32 tensor cores on NVIDIA Ampere and newer (jax's default matmul precision allows TF32 on
GPU), plain FP32 elsewhere. A chip missing here gives MFU None with the reason; add a row with its source.
No jax import at module level: launch/benchmark.py's parent process reads this table without a backend.
"""

import dataclasses
import math
import re
import subprocess
import sys

from hjepa_jax.config import ConfigError
from hjepa_jax.platform import APPLE_BACKENDS, device_memory_stats


@dataclasses.dataclass(frozen=True)
class Chip:
  name: str
  pattern: str  # regex searched (case-insensitively) in the device kind or chip name
  bfloat16_tflops: float | None  # dense bf16 (tensor cores / matrix units, FP32 accumulate)
  float32_tflops: float | None  # dense float32 at XLA's default precision (TF32 tensor cores where present)
  float32_basis: str
  source: str


_NV = "https://www.nvidia.com/en-us/data-center"
_TF32 = "TF32 tensor cores"
_NO_TC = "FP32 (no TF32 or bf16 tensor cores)"
_APPLE = "FP32 ALUs (bf16 runs no faster on this GPU)"
SOURCES = {
  "h200": f"NVIDIA H200 datasheet (SXM and NVL columns; sparsity figures halved), {_NV}/h200/",
  "h100": f"NVIDIA H100 datasheet (SXM, PCIe and NVL columns; sparsity figures halved), {_NV}/h100/",
  "a100": f"NVIDIA A100 datasheet (SXM and PCIe: same dense peaks), {_NV}/a100/",
  "l40s": f"NVIDIA L40S datasheet (sparsity figures halved), {_NV}/l40s/",
  "l4": f"NVIDIA L4 datasheet (sparsity figures halved), {_NV}/l4/",
  "a10": f"NVIDIA A10 datasheet (sparsity figures halved), {_NV}/products/a10-gpu/",
  "ada": "NVIDIA Ada Lovelace GPU architecture whitepaper, appendix (RTX 4090; bf16 with FP32 accumulate), "
  "https://images.nvidia.com/aem-dam/Solutions/geforce/ada/nvidia-ada-gpu-architecture.pdf",
  "ga102": "NVIDIA Ampere GA102 GPU architecture whitepaper (RTX 3090; bf16 with FP32 accumulate), "
  "https://www.nvidia.com/content/PDF/nvidia-ampere-ga-102-gpu-architecture-whitepaper-v2.1.pdf",
  "t4": f"NVIDIA T4 datasheet, {_NV}/tesla-t4/",
  "v100": f"NVIDIA V100 datasheet (SXM2), {_NV}/v100/",
  "m1": "Apple newsroom, 'Introducing M1 Pro and M1 Max' (2021-10-18): 32-core GPU, up to 10.4 teraflops",
  "m2": "Apple newsroom, 'Apple unveils M2 Pro and M2 Max' (2023-01-17): 38-core GPU, 13.6 teraflops",
  "m3": "Apple newsroom, 'Apple unveils M3, M3 Pro, and M3 Max' (2023-10-30): no FLOP/s figure published",
}
# First match wins: specific names before general ones. TFLOP/s: (bf16, float32 at XLA's default precision).
CHIPS = (
  Chip("NVIDIA H200 NVL", r"h200.*nvl", 835.5, 417.5, _TF32, SOURCES["h200"]),
  Chip("NVIDIA H200 SXM", r"h200", 989.5, 494.5, _TF32, SOURCES["h200"]),
  Chip("NVIDIA H100 NVL", r"h100.*nvl", 835.5, 417.5, _TF32, SOURCES["h100"]),
  Chip("NVIDIA H100 PCIe", r"h100.*pcie", 756.5, 378.0, _TF32, SOURCES["h100"]),
  Chip("NVIDIA H100 SXM", r"h100|gh200", 989.5, 494.5, _TF32, SOURCES["h100"]),
  Chip("NVIDIA A100", r"a100", 312.0, 156.0, _TF32, SOURCES["a100"]),
  Chip("NVIDIA L40S", r"l40s", 366.5, 183.0, _TF32, SOURCES["l40s"]),
  Chip("NVIDIA L4", r"\bl4\b", 121.0, 60.0, _TF32, SOURCES["l4"]),
  Chip("NVIDIA A10", r"\ba10g?\b", 125.0, 62.5, _TF32, SOURCES["a10"]),
  Chip("NVIDIA GeForce RTX 4090", r"rtx 4090", 165.2, 82.6, _TF32, SOURCES["ada"]),
  Chip("NVIDIA GeForce RTX 3090", r"rtx 3090", 71.0, 35.6, _TF32, SOURCES["ga102"]),
  Chip("NVIDIA T4", r"\bt4\b", None, 8.1, _NO_TC, SOURCES["t4"]),
  Chip("NVIDIA V100", r"v100", None, 15.7, _NO_TC, SOURCES["v100"]),
  Chip("Apple M1 Max GPU", r"m1 max", 10.4, 10.4, _APPLE, SOURCES["m1"]),
  Chip("Apple M2 Max GPU", r"m2 max", 13.6, 13.6, _APPLE, SOURCES["m2"]),
  Chip("Apple M3 Max GPU", r"m3 max", None, None, "none published", SOURCES["m3"]),
)


def chip_name(backend, device_kind):
  """The name the table is matched against: jax's device kind, or the Mac's chip for Apple GPU plugins."""
  if backend.lower() in APPLE_BACKENDS and sys.platform == "darwin":
    try:
      brand = subprocess.run(
        ["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=5, check=False
      ).stdout.strip()
    except OSError:
      brand = ""
    if brand:
      return f"{brand} GPU ({device_kind})"
  return device_kind


def find_chip(name):
  return next((c for c in CHIPS if re.search(c.pattern, name, re.IGNORECASE)), None)


def peak_flops(name, dtype):
  """(peak dense FLOP/s or None, the Chip row or None, why None): for `dtype` "float32" or "bfloat16"."""
  chip = find_chip(name)
  if chip is None:
    return (
      None,
      None,
      f"no peak FLOP/s figure for device {name!r} in hjepa_jax/devices.py CHIPS (add one, with its source)",
    )
  tflops = getattr(chip, f"{dtype}_tflops")
  if tflops is None:
    return None, chip, f"{chip.name} has no {dtype} peak in the table ({chip.float32_basis})"
  return tflops * 1e12, chip, ""


# The utilisation at which a chip's time is predicted from a FLOP count (launch/plan.py --chip, the configs'
# budget recipes). An assumption, not a measurement (no Apple GPU has run this step in this project): large
# float32 GEMMs reach roughly 80% of an M1-family GPU's ALU peak (philipturner/metal-benchmarks), and a ViT
# training step (attention, norms, a narrow predictor, many small kernels) gets about half its GEMM rate.
PLANNING_UTILISATION = 0.4


def budget_hours(text):
  """A config's `budget=` argument: "8h" or "8" -> 8.0; "" -> None (no budget)."""
  if not text:
    return None
  try:
    hours = float(text[:-1] if text.endswith("h") else text)
  except ValueError:
    hours = -1.0
  if not hours > 0:
    raise ConfigError(f"config argument 'budget' needs hours, e.g. budget=8h; got budget={text!r}")
  return hours


def epochs_within(hours, gflop_per_image, images_per_epoch, chip, *, share, most):
  """Whole epochs of `gflop_per_image` that fit `share` of `hours` on `chip` at PLANNING_UTILISATION of its
  float32 peak (at most `most`): a budget recipe's arithmetic."""
  rate = find_chip(chip).float32_tflops * 1e12 * PLANNING_UTILISATION
  epoch_s = gflop_per_image * 1e9 * images_per_epoch / rate
  return float(min(most, math.floor(share * hours * 3600 / epoch_s)))


def mfu(flops_per_step, step_s, peak):
  """Model FLOPs utilisation in [0, 1] (None where a figure is missing)."""
  if not flops_per_step or not step_s or not peak:
    return None
  return flops_per_step / step_s / peak


def memory_source():
  """What hjepa_jax.platform.peak_memory_mb() reads here: the device's own peak, or this process's peak RSS."""
  stats = device_memory_stats()
  return "device peak_bytes_in_use" if "peak_bytes_in_use" in stats else "process peak RSS (no device memory stats)"
