"""Renders "What each switch buys" (docs/switch_buys.md) from the paired scores of the seed guide's rows.

    python launch/paired.py --guide --config=configs/cifar10.py:cpu,epochs=4 --workdir=results/guide \\
        --baseline=pooled --scores_dir=docs/runs/switches_cpu          # trains and scores (hours)
    python launch/buys.py --scores_dir=docs/runs/switches_cpu --base=pooled --out=docs/switch_buys.md \\
        --speed=docs/runs/speed_cpu/benchmark.json      # + a step benchmark's report: the speed rows

The rows, the guide's claims and the verdict rules live in hjepa_jax/buys.py; this only reads the committed
records (SCORES_DIR/<variant>/seed<k>.json, and WORKDIR's when given) and writes the page.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from hjepa_jax import buys, cli, jsonfile, paired  # noqa: E402
from hjepa_jax.benchmark import cell_name as bench_name  # noqa: E402

SPEED_KEYS = ("speed", "speed_rounds", "peak_memory", "activation_memory", "verdict")

_SCORES_DIR = flags.DEFINE_string("scores_dir", None, "Committed paired records (SCORES_DIR/<variant>/seed<k>.json).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Also read WORKDIR/<variant>/seed<k>/scores.json (optional).")
_BASE = flags.DEFINE_string("base", "base", "The variant every row is paired with unless the row names another.")
_SPEED = flags.DEFINE_multi_string(
  "speed", [], "A step benchmark's report (launch/benchmark.py: OUT/benchmark.json) for the speed and memory rows."
)
_OUT = flags.DEFINE_string("out", "docs/switch_buys.md", "The page to write (and OUT without .md + .json).")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  with cli.user_errors(paired.PairedError):
    if not (_SCORES_DIR.value or _WORKDIR.value):
      raise paired.PairedError("give --scores_dir (or --workdir): where the guide rows' paired records are")
    _, seeds = paired.discover(_WORKDIR.value, _SCORES_DIR.value)
    records = paired.load_records(buys.guide_variants(_BASE.value), seeds, _WORKDIR.value, _SCORES_DIR.value)
    if not any(r["status"] == "ok" and r["variant"] == _BASE.value for r in records):
      raise paired.PairedError(
        f"no scored run of the base variant {_BASE.value!r} in {_SCORES_DIR.value or _WORKDIR.value}"
      )
    source = f"`{_SCORES_DIR.value or _WORKDIR.value}`"
    speed = []
    for path in _SPEED.value:
      report = jsonfile.read(path)
      if not report or "bench" not in report:
        raise paired.PairedError(f"--speed={path}: not a step benchmark's benchmark.json (launch/benchmark.py)")
      speed.append((report, path))
    command = f"python launch/buys.py --scores_dir={_SCORES_DIR.value} --base={_BASE.value} --out={_OUT.value}"
    command += "".join(f" --speed={path}" for path in _SPEED.value)
    markdown, measured = buys.render(records, _BASE.value, source, command, speed=speed)
  jsonfile.write_text(_OUT.value, markdown)
  summary = [
    {"row": m["row"].name, "against": m["against"], "diffs": m["diffs"], "verdicts": m["verdicts"], "costs": m["costs"]}
    for m in measured
  ]
  speed_rows = [
    {"feature": m["row"].feature, "cell": bench_name(m["cell"]), **{k: m[k] for k in SPEED_KEYS}}
    for report, _ in speed
    for m in buys.measure_speed(report)
  ]
  jsonfile.write(os.path.splitext(_OUT.value)[0] + ".json", {"rows": summary, "speed": speed_rows})
  print(markdown)
  print(f"wrote {_OUT.value}")


if __name__ == "__main__":
  app.run(main)
