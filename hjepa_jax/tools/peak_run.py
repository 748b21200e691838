"""Runs a Python script as __main__ and then prints its peak memory as one JSON line.

    python hjepa_jax/tools/peak_run.py SCRIPT [ARGS...]

The step benchmark puts the official I-JEPA step beside ours (hjepa_jax/benchmark.py); that script prints its
speed but not its memory, and it runs in whatever Python has torch, which may lack this package's dependencies.
So this file is standard library only and runs by path. The last line it prints is
{"peak_run": {"peak_rss_mib": ..., "cuda_peak_mib": ...}}: the process's peak resident set (what our CPU cells
report) and, where the script used CUDA through torch, torch's peak allocated memory (what a GPU cell's
peak_bytes_in_use corresponds to); null where not applicable.
"""

import json
import resource
import runpy
import sys


def peak_rss_mib():
  rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  return rss / 2**20 if sys.platform == "darwin" else rss / 2**10  # bytes on macOS, KiB on Linux


def cuda_peak_mib():
  torch = sys.modules.get("torch")
  try:
    if torch is not None and torch.cuda.is_initialized():
      return torch.cuda.max_memory_allocated() / 2**20
  except Exception:  # pylint: disable=broad-except  (a torch without CUDA raises assorted errors)
    pass
  return None


def main(argv):
  if len(argv) < 2:
    sys.exit("usage: python peak_run.py SCRIPT [ARGS...]")
  sys.argv = argv[1:]
  runpy.run_path(argv[1], run_name="__main__")
  sys.stdout.flush()
  print(json.dumps({"peak_run": {"peak_rss_mib": peak_rss_mib(), "cuda_peak_mib": cuda_peak_mib()}}), flush=True)


if __name__ == "__main__":
  main(sys.argv)
