"""Per-backend settings: names compared case-insensitively, refusals name the key and the fix."""

import os
import subprocess
import sys

import pytest

from hjepa_jax import platform


def make(backend):
  return platform.Platform(backend=backend, device_kind="x", num_devices=1, process_count=1)


@pytest.mark.parametrize(
  "name, apple", [("METAL", True), ("mps", True), ("MTL", True), ("mlx", True), ("cpu", False), ("CUDA", False)]
)
def test_backend_names_are_case_insensitive(name, apple):
  p = make(name)
  assert p.backend == name.lower() and p.is_apple is apple


def test_donation_off_only_where_ignored():
  assert make("METAL").donate is False
  assert make("cpu").donate and make("cuda").donate and make("mps").donate


def test_bfloat16_refused_on_jax_metal_with_the_fix():
  with pytest.raises(platform.PlatformError, match="--config.model.dtype=float32"):
    make("METAL").check_dtype("bfloat16")
  make("METAL").check_dtype("float32")
  make("cuda").check_dtype("bfloat16")
  make("mps").check_dtype("bfloat16")


def test_cudnn_attention_only_on_cuda_and_fused():
  make("cuda").check_attention(True, "cudnn")
  for p, fused in [(make("cpu"), True), (make("mps"), True), (make("cuda"), False)]:
    with pytest.raises(platform.PlatformError, match="attention_impl"):
      p.check_attention(fused, "cudnn")
  make("METAL").check_attention(True, "auto")


def test_detect_reports_this_machine():
  p = platform.detect()
  assert p.backend == p.backend.lower() and p.num_devices >= 1


def test_launchers_set_cpu_flags_and_restart_once_with_huge_page_malloc():
  """tune_host adds the XLA:CPU flags (a user's own value wins) and re-executes the process with the glibc
  tunable set, once, unless opted out."""
  if not (sys.platform.startswith("linux") and platform._glibc_at_least(2, 35) and platform._thp_usable()):
    pytest.skip("needs Linux, glibc >= 2.35 and transparent huge pages not 'never'")
  code = (
    "from hjepa_jax.platform import tune_host; tune_host(); import os; "
    "print(os.environ.get('GLIBC_TUNABLES'), '|', os.environ.get('XLA_FLAGS'))"
  )
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "XLA_FLAGS")}

  def run(**extra):
    out = subprocess.run(
      [sys.executable, "-c", code], env=dict(env, PYTHONPATH=root, **extra), capture_output=True, text=True, check=True
    ).stdout
    return [part.strip() for part in out.split("|")]

  assert run() == [platform.HUGE_PAGES_TUNABLE, " ".join(platform.LINUX_XLA_FLAGS)]
  tunables, flags = run(GLIBC_TUNABLES="glibc.malloc.arena_max=2", XLA_FLAGS="--xla_force_host_platform_device_count=2")
  assert tunables == "glibc.malloc.arena_max=2:" + platform.HUGE_PAGES_TUNABLE
  assert flags == " ".join(["--xla_force_host_platform_device_count=2", *platform.LINUX_XLA_FLAGS])
  own = "--xla_cpu_enable_concurrency_optimized_scheduler=true"
  assert run(HJEPA_HUGE_PAGES="0", XLA_FLAGS=own) == ["None", own]


@pytest.mark.parametrize(
  "stats, device",
  [({"peak_bytes_in_use": 0}, True), ({"peak_bytes_in_use": 3 << 20}, True), (None, False), ({}, False)],
)
def test_peak_memory_and_its_label_agree_even_before_the_first_allocation(monkeypatch, stats, device):
  """A GPU reports a peak of 0 before anything is allocated; that is still the device's figure. (An H200 report
  once labelled device peaks "process peak RSS" because the label was read at start-up from the value.)"""
  import jax  # pylint: disable=g-import-not-at-top

  from hjepa_jax import devices  # pylint: disable=g-import-not-at-top

  class Dev:
    def memory_stats(self):
      return stats

  monkeypatch.setattr(jax, "local_devices", lambda: [Dev()])
  assert devices.memory_source().startswith("device") is device
  if device:
    assert platform.peak_memory_mb() == stats["peak_bytes_in_use"] / 2**20
  else:
    assert platform.peak_memory_mb() > 0  # this process's peak RSS
