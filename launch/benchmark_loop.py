"""Times where a real training step's time goes on this machine and prints it (hjepa_jax/loopbench.py).

    python launch/benchmark_loop.py --config=configs/cifar10.py --config.data.cifar10_dir=DIR --steps=100
    XLA_FLAGS=--xla_gpu_enable_command_buffer= python launch/benchmark_loop.py ...   # without CUDA graphs
    python launch/benchmark_loop.py --config=configs/cifar10.py --data_pack=A.npz,TEST.npz --out=/tmp/loop

The update alone on one reused batch, each step waited for or not, the device input path alone, the two
together, the training loop's mechanics, and augmentation and update fused into one program. `--data_pack`
unpacks launch/benchmark.py's CIFAR-10 packs (both splits needed) and points data.cifar10_dir at them;
`--out` writes loop.json there and, with `--trace`, a profiler trace of 20 loop steps.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags  # noqa: E402

from hjepa_jax import cli  # noqa: E402

_CONFIG = cli.define_config()
_STEPS = flags.DEFINE_integer("steps", 100, "Timed steps per variant (after --warmup).")
_WARMUP = flags.DEFINE_integer("warmup", 5, "Untimed steps before each variant.")
_VARIANTS = flags.DEFINE_list(
  "variants",
  ["reused", "waited", "input", "fresh", "loop", "fused", "fused_loop"],
  "Variants (hjepa_jax/loopbench.py).",
)
_DATA_PACK = flags.DEFINE_list("data_pack", [], "launch/benchmark.py --pack files to unpack as the CIFAR-10 folder.")
_OUT = flags.DEFINE_string("out", None, "Folder for loop.json (and trace/ with --trace).")
_TRACE = flags.DEFINE_bool("trace", False, "A profiler trace of 20 loop steps in OUT/trace (needs --out).")
flags.mark_flags_as_required(["config"])


def main(argv):
  del argv
  import jax  # pylint: disable=g-import-not-at-top

  from hjepa_jax import benchmark as bench  # pylint: disable=g-import-not-at-top
  from hjepa_jax import loopbench  # pylint: disable=g-import-not-at-top

  cfg = _CONFIG.value
  out = _OUT.value and os.path.abspath(_OUT.value)
  if _TRACE.value and not out:
    sys.exit("error: --trace writes OUT/trace: give --out as well")
  if _DATA_PACK.value:
    dest = os.path.join(out or "/tmp/hjepa_loop", "data", "cifar-10-batches-py")
    print(f"unpacked {bench.unpack_cifar10(_DATA_PACK.value, dest)} images to {dest}")
    cfg.data.cifar10_dir = dest
  dev = jax.devices()[0]
  print(f"{dev.platform} ({dev.device_kind}) x {jax.device_count()}; XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
  with cli.user_errors():
    r = loopbench.measure_loop(
      cfg,
      steps=_STEPS.value,
      warmup=_WARMUP.value,
      variants=tuple(_VARIANTS.value),
      trace_dir=os.path.join(out, "trace") if _TRACE.value else None,
    )
  r.update(device=dev.device_kind, backend=dev.platform, xla_flags=os.environ.get("XLA_FLAGS", ""))
  print(f"batch {r['batch']}, compile {r['compile_s']:.1f} s")
  for name, phases in r.get("phases_ms", {}).items():
    print(f"{name}: host ms per step in " + ", ".join(f"{k} {v:.2f}" for k, v in phases.items()))
  if out:
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "loop.json"), "w") as f:
      json.dump(r, f, indent=1)


if __name__ == "__main__":
  cli.run(main)
