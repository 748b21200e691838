"""Compare finished (or running) runs: one markdown table of final metrics and overlaid curves.

    python launch/compare_runs.py results/conservative results/aggressive [--output=comparison]

Rows are metrics, columns runs: the last value of every scalar in each run's TensorBoard event
files, and the offline metrics of launch/evaluate.py (WORKDIR/evaluation/results.json, prefixed
`evaluate/`) when present. Prints the table and writes OUTPUT/comparison.md and OUTPUT/curves.png.
Reads event files without TensorFlow, so it is quick next to a training run.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from hjepa_jax.tools import events, figures  # noqa: E402

_OUTPUT = flags.DEFINE_string("output", "comparison", "Directory for comparison.md and curves.png.")

CURVE_TAGS = (  # level 0 and both encoders' k-NN compare across hierarchy depths (train/loss sums the levels)
  "train/loss",
  "train/loss_level_0",
  "train/loss_level_1",  # and level 1 beside its position-only floor: how each hierarchy design's level behaves
  "train/pos_floor_level_1",
  "eval/knn_top1_k20",
  "eval/online/knn_top1_k20",
  "train/feature_variance",
)
# Constant or bookkeeping scalars that say nothing about how a run went.
SKIP = ("train/epoch", "train/context_tokens", "train/weight_decay", "train/steps_per_sec")


def results_metrics(workdir):
  """{`evaluate/<feature kind>/<metric>`: value} from WORKDIR/evaluation/results.json, or {}."""
  path = os.path.join(workdir, "evaluation", "results.json")
  if not os.path.isfile(path):
    return {}
  with open(path) as f:
    results = json.load(f)
  tree = results.get("metrics", results) if isinstance(results, dict) else {}
  out = {}

  def walk(node, prefix):
    for k, v in node.items():
      if isinstance(v, dict):
        walk(v, f"{prefix}{k}/")
      elif isinstance(v, (int, float)) and not isinstance(v, bool) and not k.endswith("_ci95"):
        out[f"evaluate/{prefix}{k}"] = float(v)

  walk(tree, "")
  if isinstance(results.get("step"), int):
    out["evaluate/step"] = float(results["step"])
  return out


def run_names(workdirs):
  """Short unique column names: basenames, with the parent added (then an index) where they collide."""
  paths = [os.path.abspath(w).rstrip("/") for w in workdirs]
  names = [os.path.basename(p) for p in paths]
  if len(set(names)) < len(names):
    names = [os.path.join(os.path.basename(os.path.dirname(p)), os.path.basename(p)) for p in paths]
  counts, seen, out = {n: names.count(n) for n in names}, {}, []
  for n in names:
    seen[n] = seen.get(n, 0) + 1
    out.append(f"{n} ({seen[n]})" if counts[n] > 1 else n)
  return out


def _fmt(v):
  return "" if v is None else f"{v:.4g}"


ROW_ORDER = ("step", "train/", "eval/", "evaluate/")


def _row_key(metric):
  return next((i for i, p in enumerate(ROW_ORDER) if metric.startswith(p)), len(ROW_ORDER)), metric


def comparison_table(columns):
  """Markdown table from {run name: {metric: value}}; rows: step, train/, eval/, evaluate/, others."""
  keys = sorted({k for m in columns.values() for k in m}, key=_row_key)
  lines = ["| metric | " + " | ".join(columns) + " |", "|:---|" + "---:|" * len(columns)]
  lines += [f"| {k} | " + " | ".join(_fmt(m.get(k)) for m in columns.values()) + " |" for k in keys]
  return "\n".join(lines) + "\n"


def compare(workdirs, output):
  """Writes OUTPUT/comparison.md and OUTPUT/curves.png; returns the markdown."""
  names = run_names(workdirs)
  columns, curves, notes = {}, {}, []
  for name, workdir in zip(names, workdirs):
    if not os.path.isdir(workdir):
      raise FileNotFoundError(f"{workdir}: no such run directory")
    scalars = events.read_scalars(workdir)
    metrics = {k: v for k, v in events.last_values(scalars).items() if k not in SKIP}
    steps = [int(s[-1]) for s, _ in scalars.values() if len(s)]
    if steps:
      metrics["step"] = float(max(steps))
    metrics.update(results_metrics(workdir))
    if not metrics:
      notes.append(f"{name}: no event files or results.json in {workdir}")
    columns[name], curves[name] = metrics, scalars
  os.makedirs(output, exist_ok=True)
  text = "\n".join(f"- **{n}**: `{os.path.abspath(w)}`" for n, w in zip(names, workdirs)) + "\n\n"
  text += comparison_table(columns) + "".join(f"\nNote: {n}" for n in notes)
  with open(os.path.join(output, "comparison.md"), "w") as f:
    f.write(text)
  drawn = figures.plot_curves(curves, CURVE_TAGS, os.path.join(output, "curves.png"))
  return text, drawn


def main(argv):
  workdirs = argv[1:]
  if not workdirs:
    raise app.UsageError("give one or more run directories: compare_runs.py RUN1 RUN2 ... [--output=DIR]")
  try:
    text, drawn = compare(workdirs, _OUTPUT.value)
  except FileNotFoundError as e:
    sys.exit(f"error: {e}")
  print(text, end="")
  print(
    f"\nwrote {os.path.join(_OUTPUT.value, 'comparison.md')}"
    + (f" and {os.path.join(_OUTPUT.value, 'curves.png')} ({', '.join(drawn)})" if drawn else " (no curves)")
  )


if __name__ == "__main__":
  app.run(main)
