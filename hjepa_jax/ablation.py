"""One-switch-at-a-time ablations: short runs of a base config, each with one switch flipped.

Each run is its own `launch/main.py` process (so its peak memory is its own), followed by a
k-NN evaluation of its target encoder (`evaluation.runner`). `ablate()` returns one row per run
and `format_table` renders the markdown table BENCHMARKS.md and the docs/switches.md quote.
"""

import json
import os
import subprocess
import sys
import time

from hjepa_jax import switches

LAUNCH_MAIN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "launch", "main.py")


def _flag(key, value):
  """`--config.key=value` as config_flags parses it: a tuple's strings quoted (unquoted, `(a@b:0.5,c)` fails)."""
  if isinstance(value, (tuple, list)):
    value = (
      "(" + ",".join(repr(v) if isinstance(v, str) else str(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    )
  return f"--config.{key}={value}"


def run_variant(config_path, workdir, overrides, steps, extra_flags=(), timeout=None):
  """Trains one variant in a subprocess; returns (exit code, output tail, wall seconds)."""
  log_every = max(1, steps // 2)  # the last window excludes the compile: an honest step time
  cmd = [
    sys.executable,
    LAUNCH_MAIN,
    f"--config={config_path}",
    f"--workdir={workdir}",
    f"--config.total_steps={steps}",
    f"--config.ckpt_every_steps={steps}",
    f"--config.log_every_steps={log_every}",
    "--config.eval.every_epochs=0",
    "--config.best_metric=",
    *extra_flags,
    *(_flag(k, v) for k, v in overrides.items()),
  ]
  start = time.time()
  proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout, check=False)
  return proc.returncode, proc.stdout[-3000:], time.time() - start


def ablate(config_path, config, out_dir, keys, steps, eval_examples=1000, extra_flags=(), log=print):
  """Base run plus one run per switch in `keys`; returns rows (dicts) in that order."""
  from hjepa_jax.evaluation import runner  # pylint: disable=g-import-not-at-top

  variants = [("base", {})]
  for key in keys:
    if key not in switches.SWITCHES:
      raise ValueError(f"unknown switch {key!r}; known: {', '.join(sorted(switches.SWITCHES))}")
    variants.append((key, switches.flip_overrides(config, key)))
  rows = []
  for name, overrides in variants:
    workdir = os.path.join(out_dir, name)
    code, tail, wall = run_variant(config_path, workdir, overrides, steps, extra_flags)
    row = {"switch": name, "overrides": overrides, "steps": steps, "wall_s": round(wall, 1)}
    if code != 0:
      row["error"] = tail.strip().splitlines()[-1] if tail.strip() else f"exit {code}"
      log(f"{name}: FAILED ({row['error']})")
      rows.append(row)
      continue
    with open(os.path.join(workdir, "summary.json")) as f:
      last = json.load(f)["metrics"]
    r = runner.evaluate_run(workdir, eval_types="knn", feature_kinds="avgpool", max_examples=eval_examples)
    row.update(
      loss=last["train/loss"],
      jepa_loss=last.get("train/jepa_loss", last["train/loss"]),
      knn_top1_k20=r["metrics"]["avgpool"]["knn_top1_k20"],
      step_time_s=1.0 / last["train/steps_per_sec"],
      peak_memory_mb=last["train/peak_memory_mb"],
    )
    log(
      f"{name}: loss {row['loss']:.4f}, k-NN@20 {row['knn_top1_k20']:.3f}, {row['step_time_s']:.3f} s/step, "
      f"{row['peak_memory_mb']:.0f} MiB"
    )
    rows.append(row)
  return rows


def _overrides_text(overrides):
  return ", ".join(f"`{k}={v}`" for k, v in overrides.items()) or "-"


def format_table(rows):
  """Markdown: one row per run, with the change of loss, k-NN, step time and memory vs the base."""
  base = rows[0] if "error" not in rows[0] else None
  lines = [
    "| switch | set | loss (total) | JEPA loss | k-NN top-1 @20 | step time (s) | vs base | peak memory (MiB) |",
    "|:---|:---|---:|---:|---:|---:|---:|---:|",
  ]
  for r in rows:
    if "error" in r:
      lines.append(f"| {r['switch']} | {_overrides_text(r['overrides'])} | failed: {r['error']} | | | | | |")
      continue
    rel = f"{r['step_time_s'] / base['step_time_s']:.2f}x" if base else "-"
    lines.append(
      f"| {r['switch']} | {_overrides_text(r['overrides'])} | {r['loss']:.4f} | {r['jepa_loss']:.4f} | "
      f"{r['knn_top1_k20']:.3f} | {r['step_time_s']:.3f} | {rel} | {r['peak_memory_mb']:.0f} |"
    )
  return "\n".join(lines) + "\n"
