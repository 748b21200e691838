"""Per-backend settings in one place: backend detection, donation, attention, bf16, TensorFlow.

Backend names are compared case-insensitively: jax-metal reports "METAL", jax-mps "mps",
jax-graft "mtl"; "mlx" is accepted for MLX-based plugins.
"""

import dataclasses
import logging
import os
import re
import sys

from hjepa_jax.config import ConfigError

APPLE_BACKENDS = ("metal", "mps", "mtl", "mlx")
# Backends known to ignore buffer donation (it only produces warnings there).
NO_DONATION = ("metal",)
# Backends with bfloat16 kernels for our ops; jax-metal (METAL) lacks several.
BF16_BACKENDS = ("cpu", "cuda", "gpu", "rocm", "tpu", "mps", "mtl")


HUGE_PAGES_TUNABLE = "glibc.malloc.hugetlb=1"
THP_SETTING = "/sys/kernel/mm/transparent_hugepage/enabled"
# XLA:CPU's concurrency-optimised scheduler runs independent ops side by side at the cost of keeping more
# buffers live; on 2 cores it bought nothing: turning it off made a ViT-Ti/16 step 4-21% faster in 3 of 3
# interleaved pairs and cut XLA's temporaries from 2.35 to 1.93 GiB (BENCHMARKS.md).
LINUX_XLA_FLAGS = ("--xla_cpu_enable_concurrency_optimized_scheduler=false",)


def tune_host():
  """Host-side settings for a launcher, called first thing (before jax starts): XLA:CPU flags, then
  huge-page malloc. On Linux, `LINUX_XLA_FLAGS` are added to XLA_FLAGS unless it already names them
  (Linux only: a Metal plugin's own flag parser may reject CPU flags); see `use_huge_pages`."""
  if sys.platform.startswith("linux"):
    given = os.environ.get("XLA_FLAGS", "")
    extra = [f for f in LINUX_XLA_FLAGS if f.split("=")[0] not in given]
    if extra:
      os.environ["XLA_FLAGS"] = " ".join([given, *extra]).strip()
  use_huge_pages()


def use_huge_pages():
  """Restarts this process once with glibc's malloc backing large blocks by transparent huge pages.

  XLA:CPU allocates each step's temporaries afresh (gigabytes for a ViT step) and glibc maps them
  with 4 KiB pages, so every step pays millions of page faults: on the 2-core CI machine a third of a
  ViT-Ti/16 step went to the kernel. `GLIBC_TUNABLES=glibc.malloc.hugetlb=1` (glibc >= 2.35) asks
  for 2 MiB pages where the kernel allows them (THP "madvise" or "always"), cutting the faults ~500x
  (BENCHMARKS.md). glibc reads tunables only at start-up, hence the restart; call this first thing
  in a launcher. A no-op elsewhere (macOS, musl, THP off, already set) or with HJEPA_HUGE_PAGES=0.
  """
  env = os.environ
  if env.get("HJEPA_HUGE_PAGES", "1") == "0" or "glibc.malloc.hugetlb" in env.get("GLIBC_TUNABLES", ""):
    return
  if not sys.platform.startswith("linux") or not _glibc_at_least(2, 35) or not _thp_usable():
    return
  tunables = ":".join(t for t in (env.get("GLIBC_TUNABLES"), HUGE_PAGES_TUNABLE) if t)
  sys.stdout.flush()
  sys.stderr.flush()
  os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], dict(env, GLIBC_TUNABLES=tunables))


def _glibc_at_least(major, minor):
  try:
    name, version = os.confstr("CS_GNU_LIBC_VERSION").split()
  except (ValueError, OSError, AttributeError):
    return False
  found = re.match(r"(\d+)\.(\d+)", version)
  return name == "glibc" and found is not None and tuple(map(int, found.groups())) >= (major, minor)


def _thp_usable():
  try:
    with open(THP_SETTING) as f:
      return "[never]" not in f.read()
  except OSError:
    return False


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


def device_memory_stats():
  """The first local device's memory_stats() ({} where the backend has none). Never raises."""
  import jax  # pylint: disable=g-import-not-at-top

  try:
    return jax.local_devices()[0].memory_stats() or {}
  except Exception:  # pylint: disable=broad-except  (plugins raise assorted errors here)
    return {}


def peak_memory_mb():
  """Peak memory so far in MiB: the accelerator's peak_bytes_in_use where the backend reports it
  (CUDA, some Metal plugins), else this process's peak resident set (CPU runs). Never raises.

  The key decides, not its value: before the first allocation a GPU reports a peak of 0 (an H200 report once
  labelled device peaks as RSS so); devices.memory_source() names the same choice."""
  stats = device_memory_stats()
  if "peak_bytes_in_use" in stats:
    return stats["peak_bytes_in_use"] / 2**20
  import resource  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top

  rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  return rss / 2**20 if sys.platform == "darwin" else rss / 2**10  # bytes on macOS, KiB on Linux
