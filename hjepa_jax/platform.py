"""Per-backend settings in one place: backend detection, donation, attention, bf16, TensorFlow.

Backend names are compared case-insensitively: jax-metal reports "METAL", jax-mps "mps",
jax-graft "mtl"; "mlx" is accepted for MLX-based plugins.
"""

import dataclasses
import logging

from hjepa_jax.config import ConfigError

APPLE_BACKENDS = ("metal", "mps", "mtl", "mlx")
# Backends known to ignore buffer donation (it only produces warnings there).
NO_DONATION = ("metal",)
# Backends with bfloat16 kernels for our ops; jax-metal (METAL) lacks several.
BF16_BACKENDS = ("cpu", "cuda", "gpu", "rocm", "tpu", "mps", "mtl")


class PlatformError(ConfigError):
  """A config setting this backend cannot honour (never silently dropped)."""


@dataclasses.dataclass(frozen=True)
class Platform:
  backend: str  # lower-cased jax.default_backend()
  device_kind: str
  num_devices: int
  process_count: int

  def __post_init__(self):
    object.__setattr__(self, "backend", self.backend.lower())

  @property
  def is_apple(self):
    return self.backend in APPLE_BACKENDS

  @property
  def donate(self):
    """Donate the train state where the backend honours it (best effort; saves a state copy)."""
    return self.backend not in NO_DONATION

  def check_dtype(self, dtype):
    if dtype == "bfloat16" and self.backend not in BF16_BACKENDS:
      raise PlatformError(
        f"model.dtype=bfloat16 is not supported on backend {self.backend!r}; use --config.model.dtype=float32"
      )

  def check_attention(self, fused, impl):
    if impl == "cudnn" and (not fused or self.backend not in ("cuda", "gpu")):
      raise PlatformError(
        f"model.attention_impl='cudnn' needs model.fused_attention=True on a CUDA GPU "
        f"(backend here: {self.backend!r}); use --config.model.attention_impl=auto"
      )


def detect() -> Platform:
  import jax  # pylint: disable=g-import-not-at-top  (lazy: the data pipelines use this module without JAX)

  devices = jax.devices()
  return Platform(
    backend=jax.default_backend(),
    device_kind=devices[0].device_kind,
    num_devices=len(devices),
    process_count=jax.process_count(),
  )


def hide_gpus_from_tensorflow():
  """Keep tf.data on the CPU so it never grabs GPU memory (imports TF only when called)."""
  try:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
  except ImportError:
    return
  try:
    tf.config.set_visible_devices([], "GPU")
  except RuntimeError as e:  # already initialised: nothing more we can do, but say so
    logging.warning("could not hide GPUs from TensorFlow: %s", e)


def peak_memory_mb():
  """Peak memory so far in MiB: the accelerator's peak_bytes_in_use where the backend reports it
  (CUDA, some Metal plugins), else this process's peak resident set (CPU runs). Never raises."""
  import jax  # pylint: disable=g-import-not-at-top

  try:
    stats = jax.local_devices()[0].memory_stats() or {}
  except Exception:  # pylint: disable=broad-except  (plugins raise assorted errors here)
    stats = {}
  if stats.get("peak_bytes_in_use"):
    return stats["peak_bytes_in_use"] / 2**20
  import resource  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top

  rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  return rss / 2**20 if sys.platform == "darwin" else rss / 2**10  # bytes on macOS, KiB on Linux
