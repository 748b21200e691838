"""What each switch buys: the seed guide's feature claims beside their paired, multi-seed measurements.

The seed guide sells each feature by an expected gain ("LayerScale +0.5-1% accuracy"). `GUIDE_ROWS` holds
those claims once, with the overrides that turn each feature on over a base recipe; `launch/paired.py --guide`
runs them as variants of the paired comparison, and `launch/buys.py` renders the table users read
(docs/switch_buys.md) from the committed scores, so the page is generated from the measurements, never
written by hand. Each row compares the variant with the run it is paired against (the base, or for a
feature that needs another one, that one: multi-crop only acts through a view-level loss), over the seeds
both have, with the Student-t 95% interval of `paired.paired_difference`.

A verdict is read from the interval of each headline metric:

- a feature claimed to gain: **confirmed** when the interval lies above 0, **contradicted** when it lies
  below 0, **not at this scale** when it contains 0 (the claim's range is then said to be inside the
  interval or outside it);
- a setting claimed to cost nothing (the project's own speed-ups): **confirmed** when the whole interval lies
  within `EQUIVALENCE_POINTS` of 0 (an equivalence test: an interval that merely contains 0 may be too wide
  to tell anything, as two seeds' often are), else **contradicted** when it excludes 0 (the setting changes
  quality, either way), else **inconclusive**;
- **pending** below two paired seeds.

Plain Python: the records come from `paired`, the cell settings from `benchmark`; no jax, no TensorFlow.
"""

import dataclasses
import statistics

from hjepa_jax import config as config_lib
from hjepa_jax import paired
from hjepa_jax.benchmark import CELL_SETTINGS, cell_notes

GAIN, NO_COST = "gain", "no_cost"
CONFIRMED, CONTRADICTED, NOT_HERE, PENDING = "confirmed", "contradicted", "not at this scale", "pending"
INCONCLUSIVE = "inconclusive"
KNN, LINEAR = paired.HEADLINE
COST_METRICS = ("run/steps_per_sec", "run/peak_memory_mb")


@dataclasses.dataclass(frozen=True)
class Row:
  """One feature of the guide: the variant that turns it on and what the guide says it buys."""

  name: str  # the variant's name in the paired runs
  feature: str  # the guide's name for it
  overrides: dict
  claim: str  # the guide's words
  expect: str = GAIN  # GAIN: claim_points is the promised gain; NO_COST: quality should not move
  claim_points: tuple = ()  # (low, high) accuracy points the guide promises (GAIN rows)
  against: str = ""  # the variant it is paired against ("" = the base recipe)
  # Whether a config has the feature on (config_rows); None: its first override differs from the schema's default.
  turned_on: object = None


# Values follow configs/aggressive.py where it sets them (the guide's "aggressive" column).
GUIDE_ROWS = (
  Row("layerscale", "LayerScale", {"model.layerscale": True}, "+0.5-1% accuracy", claim_points=(0.5, 1.0)),
  Row(
    "deit3",
    "DeiT III augmentation (light)",
    {"data.deit3_strength": 0.5},
    "+1-2% accuracy",
    claim_points=(1.0, 2.0),
  ),
  Row("fpn", "Feature Pyramid Network", {"model.fpn.enabled": True}, "+1-2% downstream", claim_points=(1.0, 2.0)),
  Row(
    "contrastive",
    "Contrastive component",
    {"loss.contrastive.weight": 0.1},
    "+0.8-1% accuracy",
    claim_points=(0.8, 1.0),
  ),
  Row(
    "multicrop",
    "Multi-crop (2 local views)",
    # 16 px local crops of the 32 px images: about the guide's 96 of 224.
    {"data.multicrop.num_local": 2, "data.multicrop.local_size": 16, "loss.contrastive.weight": 0.1},
    "+2-4% accuracy",
    claim_points=(2.0, 4.0),
    against="contrastive",
  ),
  Row("rope", "RoPE", {"model.rope": True}, "+0.5-1.5%", claim_points=(0.5, 1.5)),
  # The guide's ImageNet-100 row as "a second dataset in the mix", at its fallback's weights (0.5 / 0.5). The
  # only second real dataset here is Fashion-MNIST (28 px grey clothing; `fashion_mnist_local`), off the
  # evaluation set's domain, unlike the natural images the claim is about. An epoch stays CIFAR-10's 50,000
  # draws, so the mixed run has the base's steps, warmup and schedule, and half its CIFAR-10 images.
  Row(
    "mix",
    "Second dataset in the mix",
    {
      "data.datasets": ("cifar10_local@train:0.5", "fashion_mnist_local@train:0.5"),
      "data.epoch_examples": 50000,
    },
    "+10-15% accuracy (ImageNet-100 in the mix)",
    claim_points=(10.0, 15.0),
    turned_on=lambda cfg: len(cfg.data.datasets) > 1,
  ),
  # Past the guide, where the public anchors point (LeJEPA): no claim of the guide's to test, the interval alone.
  Row(
    "sigreg",
    "SIGReg (LeJEPA; not in the guide)",
    {"loss.sigreg.weight": 0.02},
    "(not in the guide) an isotropic-Gaussian regulariser of the features",
  ),
  Row(
    "per_block",
    "Predictor layout: per_block (I-JEPA's) instead of joint",
    {"model.predictor.layout": "per_block"},
    "this project's speed-up: joint should cost no quality",
    expect=NO_COST,
  ),
  Row(
    "exact_capacity",
    "Mask capacity: exact instead of batch_min",
    {"mask.capacity": "exact"},
    "this project's speed-up: batch_min should cost no quality",
    expect=NO_COST,
  ),
)

# How close to 0 a no-cost setting's whole interval must lie, in accuracy points: the median of the gains the
# guide promises for one switch (the midpoints of its ranges). "Costs nothing" then means: costs less than
# what a typical switch is said to buy, so the speed-up does not cancel a typical switch's promised gain.
# The dataset row is left out: its promise (10-15 points) is about the data, an order of magnitude beyond any
# switch's, and was not in this median when the no-cost verdicts were first read (1.25 either way of the row).
EQUIVALENCE_POINTS = statistics.median(
  sum(r.claim_points) / 2 for r in GUIDE_ROWS if r.claim_points and "data.datasets" not in r.overrides
)

# The guide's rows this table cannot measure, and why (name, claim, reason). None now: the speed and memory rows
# are measured by the step benchmark (SPEED_ROWS below).
UNMEASURED = ()


@dataclasses.dataclass(frozen=True)
class SpeedRow:
  """A speed or memory claim, read from a step benchmark (launch/benchmark.py): cells differing in one setting."""

  feature: str
  claim: str
  setting: str  # the cell field that differs: attention | remat | layout
  value: str  # the feature's value of it
  against: str  # the value it is compared with
  speed: float = 0.0  # the least images/s ratio the claim promises (0: no speed claim beyond "faster")
  activation_memory: float = 0.0  # the largest ratio of XLA temporaries the claim promises (0: no memory claim)


SPEED_ROWS = (
  SpeedRow("Flash attention (XLA's fused path)", "2-5x speedup", "attention", "xla", "einsum", speed=2.0),
  SpeedRow("Flash attention (cuDNN)", "2-5x speedup", "attention", "cudnn", "einsum", speed=2.0),
  SpeedRow(
    "Gradient checkpointing",
    "2x batch size: -50% activation memory at 80-85% speed",
    "remat",
    "nothing_saveable",
    "none",
    activation_memory=0.5,
  ),
  SpeedRow(
    "Predictor layout: joint instead of per_block",
    "this project's speed-up (fewer FLOPs)",
    "layout",
    "joint",
    "per_block",
  ),
)
SETTINGS = ("model", *CELL_SETTINGS)
# What turns each speed row's feature on in a config.
SPEED_SWITCHES = {
  ("attention", "xla"): lambda c: c.model.fused_attention and c.model.attention_impl != "cudnn",
  ("attention", "cudnn"): lambda c: c.model.fused_attention and c.model.attention_impl == "cudnn",
  ("remat", "nothing_saveable"): lambda c: c.model.remat != "none",
  ("layout", "joint"): lambda c: c.model.predictor.layout == "joint",
}


def config_rows(cfg):
  """The page's rows whose feature `cfg` turns on: a guide row when its first (defining) override differs from
  the schema's default, a speed row by SPEED_SWITCHES. The seed configs' docstrings cite these (tested)."""
  from hjepa_jax.config import base_config  # pylint: disable=g-import-not-at-top  (ml_collections)

  base = base_config()
  rows = []
  for row in GUIDE_ROWS:
    key = next(iter(row.overrides))
    on = row.turned_on(cfg) if row.turned_on else _get(cfg, key) != _get(base, key)
    if row.expect == GAIN and on:
      rows.append(row.feature)
  rows += [r.feature for r in SPEED_ROWS if SPEED_SWITCHES[(r.setting, r.value)](cfg)]
  return rows


def _get(cfg, dotted):
  node, leaf = config_lib.parent_and_leaf(cfg, dotted)
  return node[leaf]


def _budget(budget):
  if not budget:
    return "-"
  return f"{budget.get('steps')} steps of {budget.get('batch')} images ({budget.get('epochs')} epochs)"


def guide_variants(base="base"):
  """The paired variants of the guide's table: the base recipe (no overrides) first, then one per row."""
  return [paired.Variant(base, {})] + [paired.Variant(r.name, dict(r.overrides)) for r in GUIDE_ROWS]


def verdict(row, diff):
  """The verdict of one metric's paired difference (`paired.paired_difference`, in fractions) for `row`."""
  if not diff or diff.get("ci95") is None:
    return PENDING
  lo, hi = diff["ci95"]
  if row.expect == NO_COST:
    if -EQUIVALENCE_POINTS <= 100 * lo and 100 * hi <= EQUIVALENCE_POINTS:
      return CONFIRMED
    return CONTRADICTED if lo > 0 or hi < 0 else INCONCLUSIVE
  if lo > 0:
    return CONFIRMED
  return CONTRADICTED if hi < 0 else NOT_HERE


def claim_inside(row, diff):
  """Whether the guide's promised range (points) overlaps the interval (fractions); None when not applicable."""
  if row.expect != GAIN or not row.claim_points or not diff or diff.get("ci95") is None:
    return None
  lo, hi = (100 * x for x in diff["ci95"])
  return lo <= row.claim_points[1] and row.claim_points[0] <= hi


def measure(records, base="base", rows=GUIDE_ROWS):
  """Per row: its paired difference on each headline metric, the verdicts, and the cost ratios."""
  ok = [r for r in records if r.get("status") == "ok"]
  out = []
  for row in rows:
    against = row.against or base
    diffs = {
      m: paired.paired_difference(paired.per_seed(ok, row.name, m), paired.per_seed(ok, against, m))
      for m in (KNN, LINEAR)
    }
    costs = {}
    for m in COST_METRICS:
      mine, theirs = paired.per_seed(ok, row.name, m), paired.per_seed(ok, against, m)
      seeds = sorted(set(mine) & set(theirs))
      if seeds and all(theirs[s] for s in seeds):
        costs[m] = sum(mine[s] / theirs[s] for s in seeds) / len(seeds)
    out.append(
      {
        "row": row,
        "against": against,
        "diffs": diffs,
        "verdicts": {m: verdict(row, d) for m, d in diffs.items()},
        "claim_inside": {m: claim_inside(row, d) for m, d in diffs.items()},
        "costs": costs,
      }
    )
  return out


def _points(diff):
  if not diff or diff.get("mean") is None:
    return "-"
  text = f"{100 * diff['mean']:+.2f}"
  if diff.get("ci95") is not None:
    lo, hi = (100 * x for x in diff["ci95"])
    text += f" [{lo:+.2f}, {hi:+.2f}]"
  return text


def _verdict_cell(m):
  v = m["verdicts"]
  text = v[KNN] if v[KNN] == v[LINEAR] else f"k-NN: {v[KNN]}; linear: {v[LINEAR]}"
  inside = [x for x in m["claim_inside"].values() if x is not None]
  if inside and not any(inside) and v[KNN] != PENDING:
    text += " (the claimed gain is outside both intervals)"
  return text


def _cost_cell(m):
  parts = []
  if (speed := m["costs"].get("run/steps_per_sec")) is not None:
    parts.append(f"{1 / speed:.2f}x time")
  if (memory := m["costs"].get("run/peak_memory_mb")) is not None:
    parts.append(f"{memory:.2f}x memory")
  return ", ".join(parts) or "-"


def _overrides(overrides):
  return ", ".join(f"`{k}={v}`" for k, v in overrides.items()) or "(none)"


def render(records, base="base", source="", command="", rows=GUIDE_ROWS, speed=()):
  """docs/switch_buys.md: the measured table, how it was made, the speed rows and the rows it cannot measure.

  `speed`: (step-benchmark report, its path) pairs, one section each. Dated by the newest record's scoring time,
  so rendering the same inputs twice gives the same page."""
  measured = measure(records, base, rows)
  ok = [r for r in records if r.get("status") == "ok"]
  budgets = sorted({_budget(r.get("budget")) for r in ok})
  config = next((r["request"]["config"] for r in ok if r.get("request")), "?")
  machines = sorted({r.get("machine", {}).get("backend") or "?" for r in ok})
  dated = max((r.get("scored_at") or "" for r in ok), default="")[:10] or "-"
  lines = [
    "# What each switch buys",
    "",
    f"Generated by `launch/buys.py` from {source or 'the paired scores'} (newest run scored {dated}); do not edit by hand"
    + (f" (rebuild: `{command}`)." if command else "."),
    "",
    f"- Base recipe: `{config}` (variant `{base}`); each row turns one feature on over it (or over the row it names).",
    f"- Budget per run: {'; '.join(budgets) if budgets else '-'}"
    + (" (equal for every run)" if len(budgets) == 1 else " (**not equal across runs**)" if budgets else ""),
    f"- Machine: {'; '.join(machines) if machines else '-'}. Scores: the target encoder's average-pooled features, "
    "k-NN@20 with the whole train split as the bank and a linear probe, both on the whole test split.",
    "- Differences in accuracy points, variant minus the run it is paired against on the same seed "
    "(same init, data order and masks), mean [Student-t 95% interval]. Time and memory: the mean per-seed ratio "
    "(time from the median of each run's logged steps/s, which other load on a shared machine enters; the step "
    "benchmark's section "
    "measures speed alone).",
    "- Verdicts: a gain is **confirmed** when its interval lies above 0 and **contradicted** when below; "
    "**not at this scale** when the interval contains 0. A setting that should cost nothing is **confirmed** when "
    f"its whole interval lies within +/-{EQUIVALENCE_POINTS:.2f} points (the median gain the guide promises for "
    "one switch), **contradicted** when the interval excludes 0, **inconclusive** otherwise (too wide to tell). "
    "**pending**: fewer than two paired seeds.",
    "",
    "| feature | switch | paired with | the guide's claim | k-NN@20 (points) | linear probe (points) | cost | seeds | verdict |",
    "|---|---|---|---|---:|---:|---|---:|---|",
  ]
  for m in measured:
    row = m["row"]
    n = min(m["diffs"][KNN]["n"], m["diffs"][LINEAR]["n"])
    lines.append(
      f"| {row.feature} | {_overrides(row.overrides)} | `{m['against']}` | {row.claim} | {_points(m['diffs'][KNN])} "
      f"| {_points(m['diffs'][LINEAR])} | {_cost_cell(m)} | {n} | {_verdict_cell(m)} |"
    )
  for report, path in speed:
    lines += ["", render_speed(report, f"`{path}`")[0].rstrip()]
  missing = [f"- {feature} (the guide: {claim}): {why}." for feature, claim, why in UNMEASURED]
  if not speed:
    missing += [f"- {r.feature} (the guide: {r.claim}): no step benchmark given (`--speed`)." for r in SPEED_ROWS]
  if missing:
    lines += ["", "Not measured:", "", *missing]
  return "\n".join(lines) + "\n", measured


# ---------------------------------------------------------------------------------------------
# Speed and memory rows, from a step benchmark's report (launch/benchmark.py --out=DIR: DIR/benchmark.json).
# ---------------------------------------------------------------------------------------------


def _round_ratios(mine, theirs):
  """theirs' step time / mine per interleaved round (the speed-up of `mine`), or the medians' where not in rounds."""
  a, b = (mine.get("rounds") or {}).get("step_ms"), (theirs.get("rounds") or {}).get("step_ms")
  if a and b and len(a) == len(b) and all(a) and all(b):
    return [y / x for x, y in zip(a, b)]
  return [theirs["step_ms"] / mine["step_ms"]]


def speed_verdict(row, ratios, activation):
  """confirmed / not at this scale / contradicted, from the per-round speed ratios and the temporaries' ratio."""
  if row.activation_memory:
    if activation is None:
      return PENDING
    return CONFIRMED if activation <= row.activation_memory else CONTRADICTED if activation >= 1 else NOT_HERE
  if all(r >= max(row.speed, 1.0) for r in ratios):
    return CONFIRMED
  return CONTRADICTED if all(r < 1 for r in ratios) else NOT_HERE


def _ratio(mine, theirs, key):
  x, y = mine.get(key), theirs.get(key)
  return x / y if x and y else None


def measure_speed(report, rows=SPEED_ROWS):
  """Per row, every pair of measured cells that differ in its setting only: ratios and the verdict."""
  cells = [c for c in (report.get("bench") or {}).get("cells", []) if c.get("status") == "ok"]
  out = []
  for row in rows:
    others = [k for k in SETTINGS if k != row.setting]
    for mine in (c for c in cells if c.get(row.setting) == row.value):
      same = [c for c in cells if c.get(row.setting) == row.against and all(c.get(k) == mine.get(k) for k in others)]
      for theirs in same:
        ratios = _round_ratios(mine, theirs)
        activation = _ratio(mine, theirs, "xla_temp_bytes")
        out.append(
          {
            "row": row,
            "cell": mine,
            "speed": statistics.median(ratios),
            "speed_rounds": ratios,
            "peak_memory": _ratio(mine, theirs, "peak_memory_mib"),
            "activation_memory": activation,
            "verdict": speed_verdict(row, ratios, activation),
          }
        )
  return out


def _context(cell, setting=None):
  """A cell's model and settings, without the one a row varies."""
  parts = [f"{k} {cell[k]}" for k in CELL_SETTINGS[1:] if cell.get(k) and k != setting]
  return ", ".join([cell["model"], cell["dtype"], *parts])


def render_speed(report, source=""):
  """The speed and memory section of the page, for one step-benchmark report."""
  dev = report.get("device") or {}
  bench = report.get("bench") or {}
  rounds = bench.get("rounds", 1)
  lines = [
    f"## Speed and memory: {dev.get('chip', '?')} ({dev.get('backend', '?')}, jax {dev.get('jax', '?')}), "
    f"{str(report.get('started', '?'))[:10]}",
    "",
    f"From the step benchmark {source or ''} (`{' '.join(report.get('command', []))}`): synthetic images, "
    f"{bench.get('steps')} timed steps per cell, "
    + (f"the median of {rounds} interleaved rounds" if rounds > 1 else "one round")
    + f"; peak memory: {dev.get('peak_memory_source', '?')}; activation memory: XLA's temporaries of the compiled "
    "step. Ratios: the feature's cell over the one without it, same model and other settings; speed per round in "
    "brackets.",
    "",
    "| feature | cells | the guide's claim | speed (images/s ratio) | peak memory | activation memory | verdict |",
    "|---|---|---|---:|---:|---:|---|",
  ]
  measured = measure_speed(report)
  for m in measured:
    row = m["row"]
    per_round = f" [{', '.join(f'{r:.2f}' for r in m['speed_rounds'])}]" if len(m["speed_rounds"]) > 1 else ""
    lines.append(
      f"| {row.feature} | `{row.setting}={row.value}` vs `{row.against}`; {_context(m['cell'], row.setting)} "
      f"| {row.claim} | {m['speed']:.2f}x{per_round} | {_x(m['peak_memory'])} | {_x(m['activation_memory'])} "
      f"| {m['verdict']} |"
    )
  if not measured:
    lines.append("| (no pair of measured cells differs in one of these settings) | | | | | | |")
  missing = [r.feature for r in SPEED_ROWS if not any(m["row"] is r for m in measured)]
  failed = [c for c in bench.get("cells", []) if c.get("status") in ("error", "skipped")]
  if missing:
    lines += ["", f"Not measured on this machine: {'; '.join(missing)}."]
    if failed:
      lines += ["Cells that did not run:", ""]
      lines += [
        f"- {_context(c)}: {c['status']}: {(c.get('error') or c.get('reason') or '?').splitlines()[0]}" for c in failed
      ]
  refs = {k: v for k, v in (bench.get("reference") or {}).items() if v.get("status") == "ok"}
  base = [c for c in bench.get("cells", []) if c.get("vs_reference") is not None]
  if refs and base:
    lines += [
      "",
      "Beside the official I-JEPA step on the same machine (facebookresearch/ijepa's modules, the same model, "
      "batch and masks unless noted):",
      "",
      "| our cell | images/s vs the reference | peak memory vs the reference | what still differs |",
      "|---|---:|---:|---|",
    ]
    for c in base:
      notes = "; ".join(cell_notes(refs[c["model"]].get("notes") or [], c.get("layout"))) or "nothing"
      lines.append(f"| {_context(c)} | {c['vs_reference']:.2f}x | {c['memory_vs_reference']:.2f}x | {notes} |")
  return "\n".join(lines) + "\n", measured


def _x(value):
  return "-" if value is None else f"{value:.2f}x"
