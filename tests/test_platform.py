"""Per-backend settings: names compared case-insensitively, refusals name the key and the fix."""

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
