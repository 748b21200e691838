"""buys: the seed guide's feature rows, their verdict rules and the generated "What each switch buys" page."""

import ast
import os
import subprocess
import sys

import pytest

from hjepa_jax import buys, config as config_lib, experiment, switches
from hjepa_jax.data.validate import check_data_config
from hjepa_jax.paired import HEADLINE, paired_difference

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KNN, LINEAR = HEADLINE


def _record(variant, seed, knn, linear, steps_per_sec=2.0, memory=1000.0):
  return {
    "variant": variant,
    "seed": seed,
    "status": "ok",
    "request": {"config": "configs/cifar10.py:cpu,epochs=4", "overrides": {}, "steps": None, "extra_flags": []},
    "budget": {"steps": 1560, "batch": 128},
    "machine": {"backend": "cpu (cpu) x 1 device(s), 1 process(es)"},
    "scored_at": f"2026-12-0{seed + 1}T00:00:00+00:00",
    "metrics": {KNN: knn, LINEAR: linear, "run/steps_per_sec": steps_per_sec, "run/peak_memory_mb": memory},
  }


@pytest.mark.parametrize("row", buys.GUIDE_ROWS, ids=lambda r: r.name)
def test_every_row_is_a_tested_switch_that_the_base_recipe_accepts(row):
  if "data.datasets" in row.overrides:  # the data row: its second dataset is read by tests/test_data_archives.py
    assert len(row.overrides["data.datasets"]) > 1 and row.turned_on
  else:
    assert set(row.overrides) & set(switches.SWITCHES), "each row flips a switch tested to change the computation"
  cfg = config_lib.load_config(os.path.join(ROOT, "configs", "cifar10.py"), "cpu,epochs=4")
  with cfg.unlocked():
    for key, value in row.overrides.items():
      node, leaf = config_lib.parent_and_leaf(cfg, key)
      assert node[leaf] != value, f"{key} is already {value!r} in the base recipe: the row would flip nothing"
      node[leaf] = value
  config_lib.check_schema(cfg)
  check_data_config(cfg.data)
  experiment.step_spec(cfg, 100, 10)  # every value is accepted by the code that builds the step
  if row.against:
    assert row.against in {r.name for r in buys.GUIDE_ROWS}
  if row.expect == buys.NO_COST:
    assert not row.claim_points
  else:  # a gain the guide promises has its range; a row past the guide says so
    assert bool(row.claim_points) != ("not in the guide" in row.claim)


def test_guide_variants_put_the_base_first_and_name_each_row_once():
  variants = buys.guide_variants("pooled")
  assert variants[0].name == "pooled" and variants[0].overrides == {}
  names = [v.name for v in variants]
  assert len(names) == len(set(names)) == len(buys.GUIDE_ROWS) + 1


def _diff(values, base):
  return paired_difference(dict(enumerate(values)), dict(enumerate(base)))


def test_the_equivalence_margin_is_the_size_of_a_promised_gain():
  promised = [p for r in buys.GUIDE_ROWS for p in r.claim_points]
  assert min(promised) < buys.EQUIVALENCE_POINTS < max(promised)


def test_verdicts_follow_the_interval():
  gain, no_cost = buys.GUIDE_ROWS[0], next(r for r in buys.GUIDE_ROWS if r.expect == buys.NO_COST)
  base = [0.40, 0.42, 0.41]
  up, down, noise = _diff([0.42, 0.44, 0.43], base), _diff([0.38, 0.40, 0.39], base), _diff([0.41, 0.41, 0.42], base)
  assert buys.verdict(gain, up) == buys.CONFIRMED
  assert buys.verdict(gain, down) == buys.CONTRADICTED
  assert buys.verdict(gain, noise) == buys.NOT_HERE
  assert buys.verdict(gain, _diff([0.42], [0.40])) == buys.PENDING  # one seed: no interval
  assert buys.verdict(no_cost, noise) == buys.INCONCLUSIVE  # contains 0, but +/-2.9 points wide: cannot tell
  assert buys.verdict(no_cost, _diff([0.401, 0.419, 0.411], base)) == buys.CONFIRMED  # +/-0.3 points
  assert buys.verdict(no_cost, down) == buys.verdict(no_cost, up) == buys.CONTRADICTED
  assert buys.claim_inside(gain, up) is False  # +2 points every seed: LayerScale promises 0.5-1
  assert buys.claim_inside(gain, _diff([0.405, 0.43, 0.42], base)) is True  # +0.5, +1, +1 points


def test_the_page_is_generated_from_the_records():
  records = []
  for seed in range(3):
    records += [
      _record("base", seed, 0.40 + seed / 100, 0.45 + seed / 100),
      _record("layerscale", seed, 0.43 + seed / 100, 0.48 + seed / 100, steps_per_sec=1.0),  # +3 points, 2x time
      _record("rope", seed, 0.38 + seed / 100, 0.43 + seed / 100 + (seed == 1) / 1000),  # -2 points
      _record("contrastive", seed, 0.40 + seed / 100, 0.45 + seed / 100),
      _record("multicrop", seed, 0.40 + seed / 100 + (seed % 2) / 100, 0.45 + seed / 100),  # vs contrastive
    ]
  page, measured = buys.render(records, "base", source="`scores`", command="python launch/buys.py")
  rows = {m["row"].name: m for m in measured}
  assert rows["layerscale"]["verdicts"] == {KNN: buys.CONFIRMED, LINEAR: buys.CONFIRMED}
  assert rows["layerscale"]["costs"]["run/steps_per_sec"] == pytest.approx(0.5)
  assert rows["rope"]["verdicts"][KNN] == buys.CONTRADICTED
  assert rows["multicrop"]["against"] == "contrastive" and rows["multicrop"]["verdicts"][KNN] == buys.NOT_HERE
  assert rows["fpn"]["verdicts"][KNN] == buys.PENDING
  assert "| LayerScale | `model.layerscale=True` | `base` | +0.5-1% accuracy | +3.00 [+3.00, +3.00]" in page
  assert "2.00x time" in page and "(newest run scored 2026-12-03)" in page
  assert "(equal for every run)" in page
  for feature, _, _ in buys.UNMEASURED:
    assert feature in page
  assert buys.render(records, "base", source="`scores`", command="python launch/buys.py")[0] == page


def test_launcher_writes_the_page_from_committed_scores(tmp_path):
  from hjepa_jax import jsonfile  # pylint: disable=g-import-not-at-top

  scores = tmp_path / "scores"
  for seed in range(2):
    for rec in (_record("pooled", seed, 0.40, 0.45 + seed / 100), _record("rope", seed, 0.41 + seed / 100, 0.46)):
      jsonfile.write(str(scores / rec["variant"] / f"seed{seed}.json"), rec)
  out = tmp_path / "buys.md"
  cmd = [sys.executable, os.path.join(ROOT, "launch", "buys.py"), f"--scores_dir={scores}", "--base=pooled"]
  proc = subprocess.run([*cmd, f"--out={out}"], capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr
  assert "| RoPE | `model.rope=True` | `pooled` |" in out.read_text()
  assert jsonfile.read(str(tmp_path / "buys.json"))["rows"][0]["row"] == "layerscale"
  proc = subprocess.run([*cmd, "--base=base", f"--out={out}"], capture_output=True, text=True, timeout=120)
  assert proc.returncode == 1 and "no scored run of the base variant 'base'" in proc.stderr + proc.stdout


def _speed_report():
  """A step benchmark's report: base (xla, no remat, per_block) and one change each, in 2 interleaved rounds."""

  def cell(attention="xla", remat="none", layout="per_block", ms=(100.0, 120.0), memory=1000.0, temp=4e9):
    return dict(model="ti16_224", dtype="float32", attention=attention, remat=remat, layout=layout, status="ok",
                batch=32, step_ms=sum(ms) / 2, rounds={"step_ms": list(ms)}, peak_memory_mib=memory,
                xla_temp_bytes=temp, images_per_s=32e3 / (sum(ms) / 2))  # fmt: skip

  cells = [
    cell(),
    cell(attention="einsum", ms=(105.0, 118.0), memory=1100.0),  # xla faster in round 1, slower in round 2
    cell(remat="nothing_saveable", ms=(130.0, 150.0), memory=700.0, temp=1e9),  # 0.25x temporaries
    cell(layout="joint", ms=(70.0, 80.0), memory=900.0, temp=3e9),
  ]
  cells[0].update(vs_reference=0.7, memory_vs_reference=1.5)
  cells[3].update(vs_reference=1.0, memory_vs_reference=1.3)
  return {
    "command": ["launch/benchmark.py", "--models=ti16_224"],
    "started": "2026-12-04T12:00:00+00:00",
    "device": {"chip": "cpu", "backend": "cpu", "jax": "0.10.2", "peak_memory_source": "process peak RSS"},
    "bench": {"steps": 3, "rounds": 2, "cells": cells, "reference": {"ti16_224": {"status": "ok", "notes": []}}},
  }


def test_speed_rows_compare_cells_that_differ_in_one_setting():
  measured = {m["row"].setting: m for m in buys.measure_speed(_speed_report())}
  assert set(measured) == {"attention", "remat", "layout"}  # no cuDNN cell: no cuDNN row
  flash = measured["attention"]
  assert flash["speed_rounds"] == pytest.approx([1.05, 118 / 120]) and flash["verdict"] == buys.NOT_HERE
  assert flash["peak_memory"] == pytest.approx(1000 / 1100)
  remat = measured["remat"]
  assert remat["activation_memory"] == 0.25 and remat["verdict"] == buys.CONFIRMED  # the memory claim holds
  assert remat["speed"] == pytest.approx((100 / 130 + 120 / 150) / 2)
  layout = measured["layout"]
  assert layout["verdict"] == buys.CONFIRMED and layout["speed_rounds"] == pytest.approx([100 / 70, 120 / 80])
  slower = buys.SpeedRow("x", "2x", "attention", "xla", "einsum", speed=2.0)
  assert buys.speed_verdict(slower, [0.9, 0.95], None) == buys.CONTRADICTED
  assert buys.speed_verdict(slower, [2.1, 2.5], None) == buys.CONFIRMED
  assert buys.speed_verdict(slower, [1.5, 2.5], None) == buys.NOT_HERE


def test_the_page_has_a_speed_section_per_report(tmp_path):
  from hjepa_jax import jsonfile  # pylint: disable=g-import-not-at-top

  records = [_record("base", s, 0.4, 0.45) for s in range(2)]
  page, _ = buys.render(records, "base", speed=[(_speed_report(), "speed/benchmark.json")])
  assert "## Speed and memory: cpu (cpu, jax 0.10.2), 2026-12-04" in page
  assert "| Gradient checkpointing | `remat=nothing_saveable` vs `none`; ti16_224, float32, attention xla, " in page
  assert "| 0.25x | confirmed |" in page and "| 1.46x [1.43, 1.50] |" in page
  assert "| ti16_224, float32, attention xla, remat none, layout per_block | 0.70x | 1.50x | nothing |" in page
  joint = "| ti16_224, float32, attention xla, remat none, layout joint | 1.00x | 1.30x | our predictor layout is joint"
  assert joint in page  # a cell's own layout is named beside the model's notes
  assert "Not measured on this machine: Flash attention (cuDNN)." in page  # no cuDNN cell
  failed = _speed_report()
  failed["bench"]["cells"][2].update(status="error", error="ValueError: boom\ntraceback")
  page, _ = buys.render(records, "base", speed=[(failed, "speed/benchmark.json")])
  assert "Not measured on this machine: Flash attention (cuDNN); Gradient checkpointing." in page
  assert (
    "- ti16_224, float32, attention xla, remat nothing_saveable, layout per_block: error: ValueError: boom\n" in page
  )
  without, _ = buys.render(records, "base")
  assert "Gradient checkpointing (the guide: 2x batch size" in without and "no step benchmark given" in without
  scores, report = tmp_path / "scores", tmp_path / "speed" / "benchmark.json"
  for rec in records:
    jsonfile.write(str(scores / rec["variant"] / f"seed{rec['seed']}.json"), rec)
  jsonfile.write(str(report), _speed_report())
  out = tmp_path / "buys.md"
  cmd = [sys.executable, os.path.join(ROOT, "launch", "buys.py"), f"--scores_dir={scores}", f"--out={out}"]
  proc = subprocess.run([*cmd, f"--speed={report}"], capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr
  assert f"--speed={report}" in out.read_text() and "## Speed and memory" in out.read_text()
  assert {r["verdict"] for r in jsonfile.read(str(tmp_path / "buys.json"))["speed"]} == {
    "not at this scale",
    "confirmed",
  }
  proc = subprocess.run([*cmd, f"--speed={scores}/base/seed0.json"], capture_output=True, text=True, timeout=120)
  assert proc.returncode == 1 and "not a step benchmark's benchmark.json" in proc.stderr + proc.stdout


@pytest.mark.parametrize("config", ["conservative", "aggressive", "cifar10", "folder"])
def test_seed_configs_cite_the_rows_of_the_switches_they_turn_on(config):
  path = os.path.join(ROOT, "configs", f"{config}.py")
  with open(path) as f:
    docstring = " ".join(ast.get_docstring(ast.parse(f.read())).split())
  assert "docs/switch_buys.md" in docstring
  cited = {r.feature for r in buys.GUIDE_ROWS + buys.SPEED_ROWS if f'"{r.feature}"' in docstring}
  assert cited == set(buys.config_rows(config_lib.load_config(path))), f"configs/{config}.py cites other rows"


def test_the_committed_page_is_what_the_committed_scores_render():
  """docs/switch_buys.md is generated: editing it by hand, or committing scores without re-rendering, fails here.

  Its inputs: the guide rows' paired scores and the step-benchmark reports its own rebuild command names."""
  import re  # pylint: disable=g-import-not-at-top

  from hjepa_jax import jsonfile, paired  # pylint: disable=g-import-not-at-top

  with open(os.path.join(ROOT, "docs", "switch_buys.md")) as f:
    committed = f.read()
  reports = re.findall(r" --speed=(\S+?)(?=[ `])", committed.split("\n", 3)[2])
  scores = os.path.join(ROOT, "docs", "runs", "switches_cpu")
  _, seeds = paired.discover(None, scores)
  records = paired.load_records(buys.guide_variants("pooled"), seeds, None, scores)
  command = "python launch/buys.py --scores_dir=docs/runs/switches_cpu --base=pooled --out=docs/switch_buys.md"
  command += "".join(f" --speed={path}" for path in reports)
  speed = [(jsonfile.read(os.path.join(ROOT, path)), path) for path in reports]
  page, _ = buys.render(records, "pooled", "`docs/runs/switches_cpu`", command, speed=speed)
  assert committed == page, f"docs/switch_buys.md is stale: rebuild it with `{command}`"
  assert "docs/runs/speed_cpu/benchmark.json" in reports  # the CPU's speed rows stay on the page
