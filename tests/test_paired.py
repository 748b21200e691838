"""hjepa_jax/paired.py and launch/paired.py: variants, commands, t-intervals, a resumable grid, the report.

The grid runs with injected train and score functions (a fake run directory, scores with a known answer), so
the default suite trains nothing; the slow test runs a tiny real grid end to end.
"""

import json
import math
import os
import shutil
import subprocess
import sys

import pytest

from hjepa_jax import paired
from tests._smoke import TINY_MODEL

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCH = os.path.join(ROOT, "launch", "paired.py")
STEPS, BATCH = 8, 16
KNN, PROBE = "target/avgpool/knn_top1_k20", "target/avgpool/linear_probe_top1"
LOG = (
  "2025-01-01 10:00:00,000 INFO workdir {wd}: checkpoints in checkpoints/\n"
  "2025-01-01 10:00:00,500 INFO backend cpu (cpu) x 1 devices, 1 process(es)\n"
  "2025-01-01 10:02:00,000 INFO training finished at step {steps}\n"
)


def _write(path, data):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    f.write(data if isinstance(data, str) else json.dumps(data))


def fake_run(workdir, steps=STEPS, finished=True, loss=0.5):
  """What launch/main.py leaves in a workdir that matters here: config.json, summary.json, logs/training.log."""
  _write(os.path.join(workdir, "config.json"), {"data": {"batch_size": BATCH}, "optim": {"grad_accum_steps": 1}})
  metrics = {
    "train/loss": loss,
    "train/loss_level_0": loss * 0.7,
    "train/loss_level_1": loss * 0.6,
    "train/pos_floor_level_0": 0.9,
    "train/epoch": steps * BATCH / 1600,
    "train/steps_per_sec": 4.0,
    "train/peak_memory_mb": 321.0,
    "train/lr": 1e-3,
  }
  _write(os.path.join(workdir, "summary.json"), {"step": steps, "finished": finished, "metrics": metrics})
  _write(os.path.join(workdir, "logs", "training.log"), LOG.format(wd=workdir, steps=steps))
  os.makedirs(os.path.join(workdir, "checkpoints", str(steps)), exist_ok=True)


class Fakes:
  """Injected train/score functions: the score is 0.5 + seed effect + the variant's `fake.delta` (+ `fake.noise`)."""

  def __init__(self, fail=()):
    self.trained, self.scored, self.fail = [], [], set(fail)

  def train(self, job):
    self.trained.append((job["variant"], job["seed"]))
    if job["variant"] in self.fail:
      _write(job["log"], "Traceback ...\nerror: boom in the data pipeline\n")
      return 1
    fake_run(job["workdir"], STEPS, loss=0.5 - job["overrides"].get("fake.delta", 0.0))
    return 0

  def score(self, job, encoder, kinds):
    self.scored.append((job["variant"], job["seed"], encoder, tuple(kinds)))
    seed, o = job["seed"], job["overrides"]
    noise = o.get("fake.noise", 0.0) * (1, -1, 0, 0.5, -0.5)[seed % 5]
    value = 0.5 + 0.05 * seed + o.get("fake.delta", 0.0) + noise  # seeds differ as much as the variants
    return {
      "step": STEPS,
      "dataset": "digits",
      "splits": {"train": {"split": "train", "size": 1433}, "test": {"split": "test", "size": 364}},
      "max_examples": None,
      "metrics": {
        k: {
          "knn_top1_k20": value,
          "knn_top1_k1": value - 0.1,
          "linear_probe_top1": value + 0.05,
          "linear_probe_best_lr": 0.01,
        }
        for k in kinds
      },
    }


VARIANTS = [
  paired.Variant("base", {}),
  paired.Variant("same", {"fake.noise": 1e-4}),  # the baseline's scores, give or take symmetric noise
  paired.Variant("crippled", {"fake.delta": -0.05, "fake.noise": 0.01}),  # worse on every seed, by less than
  # the seeds differ
]
SEEDS = [0, 1, 2]


def _grid(tmp_path, fakes, **kw):
  kw = dict(dict(steps=STEPS, scores_dir=str(tmp_path / "scores"), log=lambda *_: None), **kw)
  return paired.run_paired(
    "configs/smoke.py", str(tmp_path / "out"), VARIANTS, SEEDS, train_fn=fakes.train, score_fn=fakes.score, **kw
  )


# ---------------------------------------------------------------------------------------------
# Variants and commands.
# ---------------------------------------------------------------------------------------------


def test_parse_variant():
  v = paired.parse_variant("ijepa=loss.num_hierarchies=1 loss.hierarchy_weights=(1.0,)")
  assert v == paired.Variant("ijepa", {"loss.num_hierarchies": 1, "loss.hierarchy_weights": (1.0,)})
  v = paired.parse_variant("cap-2.x=mask.capacity=exact optim.lr=5e-4 model.rope=True data.name='a b' best_metric=")
  assert v.name == "cap-2.x"
  assert v.overrides == {
    "mask.capacity": "exact",
    "optim.lr": 5e-4,
    "model.rope": True,
    "data.name": "a b",
    "best_metric": "",
  }
  assert paired.parse_variant("pooled=") == paired.Variant("pooled", {})
  assert paired.parse_variant("pooled") == paired.Variant("pooled", {})
  for bad in ("bad name=x=1", "=x=1", "v=novalue", "v=a.b=1 a.b=2", "v=1x=2"):
    with pytest.raises(paired.PairedError):
      paired.parse_variant(bad)
  with pytest.raises(paired.PairedError, match="differ"):
    paired.check_variants([paired.Variant("a"), paired.Variant("a")])
  with pytest.raises(paired.PairedError, match="baseline"):
    paired.check_variants([paired.Variant("a")], "b")
  assert paired.check_variants([paired.Variant("a"), paired.Variant("b")]) == "a"


def test_train_command():
  overrides = {"loss.num_hierarchies": 1, "loss.hierarchy_weights": (1.0,), "mask.capacity": "exact"}
  cmd = paired.train_command("configs/cifar10.py:cpu,epochs=4", "OUT/ijepa/seed2", 2, overrides)
  assert cmd[0] == sys.executable and cmd[1].endswith(os.path.join("launch", "main.py"))
  assert cmd[2:] == [
    "--config=configs/cifar10.py:cpu,epochs=4",
    "--workdir=OUT/ijepa/seed2",
    "--config.seed=2",
    "--config.eval.every_epochs=0",
    "--config.best_metric=",
    "--config.loss.num_hierarchies=1",
    "--config.loss.hierarchy_weights=(1.0,)",
    "--config.mask.capacity=exact",
  ]
  from ml_collections.config_flags import tuple_parser  # pylint: disable=g-import-not-at-top

  mix = ("cifar10_local@train:0.5", "fashion_mnist_local@train:0.5")
  flag = paired.train_command("c.py", "w", 0, {"data.datasets": mix})[-1]
  assert tuple_parser.TupleParser().parse(flag.partition("=")[2]) == mix  # what main.py's config flag reads
  cmd = paired.train_command("c.py", "w", 0, {}, steps=50, extra_flags=["--config.data.batch_size=16"], niceness=10)
  assert cmd[:3] == ["nice", "-n", "10"]
  assert cmd[-2:] == ["--config.total_steps=50", "--config.data.batch_size=16"]
  assert paired.log_path("OUT", "v", 3) == os.path.join("OUT", "v", "seed3.log")
  assert paired.plan(["a", "b"], [0, 1]) == [("a", 0), ("b", 0), ("a", 1), ("b", 1)]  # seed-major


def test_whole_split_scoring(tmp_path):
  wd = str(tmp_path / "run")
  _write(os.path.join(wd, "config.json"), {"data": {"batch_size": 8, "eval_max_examples": None}})
  assert paired.whole_split_max_examples(wd) is None  # evaluate.py's default: whole splits
  _write(os.path.join(wd, "config.json"), {"data": {"batch_size": 8, "eval_max_examples": 1000}})
  assert paired.whole_split_max_examples(wd) == paired.WHOLE_SPLIT  # the run's cap lifted
  cmd = paired.score_command(wd, "online", ("avgpool", "level1"), max_examples=paired.WHOLE_SPLIT)
  assert cmd[2:] == [
    f"--workdir={wd}",
    "--eval_types=knn,linear_probe",
    "--encoder=online",
    "--feature_kinds=avgpool,level1",
    f"--max_examples={paired.WHOLE_SPLIT}",
  ]


# ---------------------------------------------------------------------------------------------
# Statistics.
# ---------------------------------------------------------------------------------------------


def test_t_quantiles():
  for df, t in ((1, 12.706), (2, 4.303), (4, 2.776), (9, 2.262), (30, 2.042), (31, 2.040), (60, 2.000)):
    assert paired.t_quantile_975(df) == pytest.approx(t, abs=1e-3), df
  assert paired.t_quantile_975(10**6) == pytest.approx(1.95996, abs=1e-5)
  for bad in (0, -1, 2.5):
    with pytest.raises(ValueError):
      paired.t_quantile_975(bad)


def test_t_quantiles_match_scipy():
  stats = pytest.importorskip("scipy.stats")
  for df in range(1, 300):
    assert paired.t_quantile_975(df) == pytest.approx(stats.t.ppf(0.975, df), abs=1e-6), df


def test_paired_difference():
  d = paired.paired_difference({0: 1.0, 1: 2.0, 2: 3.0, 7: 9.0}, {0: 0.5, 1: 1.0, 2: 2.0, 5: 0.0})
  assert d["seeds"] == [0, 1, 2] and d["n"] == 3  # only the seeds both have
  assert d["diffs"] == [0.5, 1.0, 1.0]
  mean, std = 2.5 / 3, math.sqrt(((0.5 - 2.5 / 3) ** 2 + 2 * (1 - 2.5 / 3) ** 2) / 2)
  half = 4.302653 * std / math.sqrt(3)
  assert d["mean"] == pytest.approx(mean) and d["std"] == pytest.approx(std)
  assert d["ci95"] == pytest.approx([mean - half, mean + half], abs=1e-6)
  assert d["significant"]  # [0.116, 1.550]

  same = paired.paired_difference({0: 0.4, 1: 0.5, 2: 0.6}, {0: 0.4, 1: 0.5, 2: 0.6})
  assert same["ci95"] == [0.0, 0.0] and not same["significant"]
  noisy = paired.paired_difference({0: 0.4001, 1: 0.4999, 2: 0.6}, {0: 0.4, 1: 0.5, 2: 0.6})
  assert noisy["ci95"][0] < 0 < noisy["ci95"][1] and not noisy["significant"]
  worse = paired.paired_difference({0: 0.35, 1: 0.44, 2: 0.56}, {0: 0.4, 1: 0.5, 2: 0.6})
  assert worse["ci95"][1] < 0 and worse["significant"]

  one = paired.paired_difference({0: 0.1}, {0: 0.5, 1: 0.6})
  assert one["n"] == 1 and one["ci95"] is None and not one["significant"]
  assert one["note"] == "n=1: no interval" and one["mean"] == pytest.approx(-0.4) and one["std"] is None
  none = paired.paired_difference({1: 0.1}, {0: 0.5})
  assert none["n"] == 0 and none["mean"] is None and none["note"] == "no common seed"
  assert paired.mean_std([1.0, 2.0, 3.0]) == {"n": 3, "mean": 2.0, "std": 1.0}
  assert paired.mean_std([1.0]) == {"n": 1, "mean": 1.0, "std": None}


# ---------------------------------------------------------------------------------------------
# The grid: known answers, resumption, the report.
# ---------------------------------------------------------------------------------------------


def test_run_cost_is_the_median_logged_rate_not_the_last_window(tmp_path):
  """A run's steps/s is the median over its progress lines (every session): a slow last window moves nothing."""
  fake_run(str(tmp_path))
  lines = [
    f"2025-01-01 10:0{i}:00,000 INFO step {50 * (i + 1)}/{STEPS} | loss 0.5 | {r} steps/s"
    for i, r in enumerate((2.0, 3.0, 2.5, 0.4))
  ]
  _write(os.path.join(tmp_path, "logs", "training.log"), LOG.format(wd=tmp_path, steps=STEPS) + "\n".join(lines))
  assert paired.run_facts(str(tmp_path))["metrics"]["run/steps_per_sec"] == 2.25  # the summary's window says 4.0
  assert paired.median_logged_rate("no progress lines") is None


def test_grid_known_answers_and_report(tmp_path):
  fakes = Fakes()
  records = _grid(tmp_path, fakes)
  assert fakes.trained == [(v.name, s) for s in SEEDS for v in VARIANTS]  # seed-major
  assert [r["status"] for r in records] == ["ok"] * 9
  rec = records[0]
  assert rec["budget"] == {"steps": STEPS, "batch": BATCH, "images": STEPS * BATCH, "epochs": 0.08}
  assert rec["metrics"]["run/wall_s"] == 120.0 and rec["metrics"]["run/steps_per_sec"] == 4.0
  assert rec["metrics"]["run/peak_memory_mb"] == 321.0
  assert {"train/loss", "train/loss_level_0", "train/loss_level_1", "train/pos_floor_level_0"} <= set(rec["metrics"])
  assert "train/lr" not in rec["metrics"] and KNN in rec["metrics"] and PROBE in rec["metrics"]
  assert rec["machine"]["backend"] == "cpu (cpu) x 1 device(s), 1 process(es)"
  assert rec["scoring"]["whole_splits"] and rec["scoring"]["scored"] == [["target", "avgpool"]]
  assert os.path.isfile(tmp_path / "out" / "base" / "seed0" / "scores.json")
  assert os.path.isfile(tmp_path / "scores" / "crippled" / "seed2.json")

  markdown, summary = paired.build_report(records, VARIANTS, SEEDS, "base")
  assert summary["headline"] == list(paired.HEADLINE)
  for metric in (KNN, PROBE):
    same, crippled = summary["paired"][metric]["same"], summary["paired"][metric]["crippled"]
    assert same["n"] == 3 and same["ci95"][0] <= 0 <= same["ci95"][1] and not same["significant"]
    assert crippled["ci95"][1] < 0 and crippled["significant"]
    assert crippled["mean"] == pytest.approx(-0.05)
    # Unpaired, the crippled variant's range overlaps the baseline's: the seeds differ by more than it loses.
    base, worse = summary["stats"][metric]["base"], summary["stats"][metric]["crippled"]
    assert worse["mean"] + worse["std"] > base["mean"] - base["std"]
  loss = summary["paired"]["train/loss"]["crippled"]
  assert loss["mean"] == pytest.approx(0.05) and loss["significant"]  # the fake loss rises as much
  assert f"{STEPS} steps x {BATCH} images = {STEPS * BATCH:,} images (0.08 epochs)" in markdown
  assert "equal for every run" in markdown and "requested: total_steps=8" in markdown
  assert "- Seeds: 0, 1, 2" in markdown and "- Base config: `configs/smoke.py`" in markdown
  assert "the whole train split (1433 images) as the k-NN bank" in markdown
  assert "the whole test split (364 images)" in markdown
  assert "- Runs: 9 of 9 scored, 0 failed, 0 pending" in markdown
  assert "| crippled | `fake.delta=-0.05` `fake.noise=0.01` |" in markdown
  assert "-0.0500 [" in markdown and "] *" in markdown  # the crippled row: its interval, flagged
  assert "linear_probe_best_lr" not in markdown  # chosen, not measured: json only
  headline = markdown.split("## Headline")[1].split("##")[0]
  row = next(line for line in headline.splitlines() if line.startswith("| same | "))
  assert row.endswith("| 2.0 | 4.00 |")  # 2 minutes of train wall time, 4 steps/s

  written = paired.write_report([str(tmp_path / "out")], markdown, summary, records, SEEDS)
  png = tmp_path / "out" / "paired.png"
  assert str(png) in written and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
  assert (tmp_path / "out" / "paired.md").read_text() == markdown
  saved = json.loads((tmp_path / "out" / "paired.json").read_text())
  assert saved["summary"]["paired"][KNN]["crippled"]["significant"] and len(saved["runs"]) == 9


def test_grid_resumes_and_rebuilds_from_scores_dir(tmp_path):
  fakes = Fakes()
  _grid(tmp_path, fakes)
  again = Fakes()
  records = _grid(tmp_path, again)
  assert again.trained == [] and again.scored == []  # nothing retrained or rescored
  assert [r["status"] for r in records] == ["ok"] * 9

  out, scores = str(tmp_path / "out"), str(tmp_path / "scores")
  from_out = paired.build_report(paired.load_records(VARIANTS, SEEDS, out=out), VARIANTS, SEEDS, "base")
  # A fresh machine: no run directory, no checkpoint, only the committed scores.
  shutil.rmtree(out)
  variants, seeds = paired.discover(scores_dir=scores)
  assert sorted(v.name for v in variants) == ["base", "crippled", "same"] and seeds == SEEDS
  assert dict((v.name, v.overrides) for v in variants)["crippled"] == {"fake.delta": -0.05, "fake.noise": 0.01}
  from_scores = paired.build_report(paired.load_records(VARIANTS, SEEDS, scores_dir=scores), VARIANTS, SEEDS, "base")
  assert from_scores == from_out
  # ... and continues the table: the scored runs are not redone, a new seed is.
  more = Fakes()
  records = paired.run_paired(
    "configs/smoke.py",
    out,
    VARIANTS,
    [0, 1, 2, 3],
    steps=STEPS,
    scores_dir=scores,
    train_fn=more.train,
    score_fn=more.score,
    log=lambda *_: None,
  )
  assert more.trained == [(v.name, 3) for v in VARIANTS] and len(records) == 12


def test_finished_run_is_only_scored_and_missing_scores_added(tmp_path):
  fake_run(str(tmp_path / "out" / "base" / "seed0"))  # trained before (e.g. by hand), not scored
  fakes = Fakes()
  _grid(tmp_path, fakes)
  assert ("base", 0) not in fakes.trained and ("base", 0, "target", ("avgpool",)) in fakes.scored
  assert len(fakes.trained) == 8

  more = Fakes()
  records = _grid(tmp_path, more, encoders=("target", "online"), feature_kinds=("avgpool", "last4"))
  assert more.trained == []
  assert set(more.scored) == {
    (v.name, s, e, k)
    for v in VARIANTS
    for s in SEEDS
    for e, k in (("target", ("last4",)), ("online", ("avgpool", "last4")))
  }
  assert {"online/avgpool/knn_top1_k20", "target/last4/knn_top1_k20", KNN} <= set(records[0]["metrics"])

  shutil.rmtree(tmp_path / "out" / "same" / "seed1" / "checkpoints")  # not here: keep what is scored
  last = Fakes()
  _grid(tmp_path, last, encoders=("target", "online"), feature_kinds=("avgpool", "level1"))
  assert last.trained == [] and ("same", 1) not in {(v, s) for v, s, _, _ in last.scored}


def test_failures_are_listed_and_retried(tmp_path):
  fakes = Fakes(fail={"same"})
  records = _grid(tmp_path, fakes)
  failed = [r for r in records if r["status"] == "failed"]
  assert [(r["variant"], r["seed"]) for r in failed] == [("same", s) for s in SEEDS]
  assert failed[0]["error"] == "error: boom in the data pipeline" and failed[0]["stage"] == "train"
  assert sum(r["status"] == "ok" for r in records) == 6  # the others went on
  markdown, summary = paired.build_report(records, VARIANTS, SEEDS, "base")
  assert "| same | 0 | FAILED (train): error: boom in the data pipeline |" in markdown
  assert "6 of 9 scored, 3 failed" in markdown
  assert summary["paired"][KNN]["same"]["note"] == "no common seed"
  assert os.path.isfile(tmp_path / "scores" / "same" / "seed0.failed.json")

  retry = Fakes()
  records = _grid(tmp_path, retry)
  assert retry.trained == [("same", s) for s in SEEDS]  # only the failed ones
  assert all(r["status"] == "ok" for r in records)
  assert not os.path.exists(tmp_path / "scores" / "same" / "seed0.failed.json")
  assert not os.path.exists(tmp_path / "out" / "same" / "seed0" / "failed.json")


def test_unfinished_run_and_pending_runs(tmp_path):
  def stopped(job):  # exits 0 (a SIGTERM saves and stops) before the end of the budget
    fake_run(job["workdir"], STEPS // 2, finished=False)
    return 0

  fakes = Fakes()
  records = paired.run_paired(
    "configs/smoke.py",
    str(tmp_path / "out"),
    VARIANTS[:1],
    [0],
    steps=STEPS,
    train_fn=stopped,
    score_fn=fakes.score,
    log=lambda *_: None,
  )
  assert records[0]["status"] == "failed" and "stopped at step 4" in records[0]["error"]
  assert fakes.scored == []
  records = paired.load_records(VARIANTS, [0, 1], out=str(tmp_path / "out"))
  assert [r["status"] for r in records] == ["failed", "pending", "pending", "pending", "pending", "pending"]
  markdown, summary = paired.build_report(records, VARIANTS, [0, 1], "base")
  assert "| base | 1 | pending |" in markdown and "0 of 6 scored, 1 failed, 5 pending" in markdown
  assert "no run finished yet" in markdown
  paired.write_report([str(tmp_path / "empty")], markdown, summary, records, [0, 1])
  assert (tmp_path / "empty" / "paired.png").stat().st_size > 0


def test_changed_request_is_refused(tmp_path):
  _grid(tmp_path, Fakes())
  with pytest.raises(paired.PairedError, match="total_steps|steps"):
    _grid(tmp_path, Fakes(), steps=2 * STEPS)
  changed = [paired.Variant("base", {"optim.lr": 0.1})]
  with pytest.raises(paired.PairedError, match="base/seed0"):
    paired.run_paired("configs/smoke.py", str(tmp_path / "out"), changed, [0], steps=STEPS, log=lambda *_: None)
  same_config = os.path.join(ROOT, "configs", "smoke.py")  # the same file, spelt otherwise: accepted
  again = Fakes()
  paired.run_paired(
    same_config,
    str(tmp_path / "out"),
    VARIANTS,
    SEEDS,
    steps=STEPS,
    train_fn=again.train,
    score_fn=again.score,
    log=lambda *_: None,
  )
  assert again.trained == []


def _launch(*args):
  env = dict(os.environ, PYTHONUNBUFFERED="1")
  proc = subprocess.run(
    [sys.executable, LAUNCH, *args],
    cwd=ROOT,
    env=env,
    stdout=subprocess.PIPE,
    stderr=subprocess.STDOUT,
    text=True,
    check=False,
  )
  return proc.returncode, proc.stdout


def test_launcher_report_only_and_errors(tmp_path):
  _grid(tmp_path, Fakes(fail={"same"}))
  shutil.rmtree(tmp_path / "out")
  scores = str(tmp_path / "scores")
  code, out = _launch("--report_only", f"--scores_dir={scores}", "--baseline=base")
  assert code == 1, out  # the failed runs are reported, and the exit code says so
  assert "- Seeds: 0, 1, 2" in out and "| crippled |" in out and "failed: same/seed0" in out
  assert os.path.isfile(os.path.join(scores, "paired.png")) and os.path.isfile(os.path.join(scores, "paired.json"))
  code, out = _launch("--config=configs/smoke.py", f"--workdir={tmp_path / 'w'}", "--variant=bad name=x=1")
  assert code == 1 and out.strip().splitlines()[-1].startswith("error: variant 'bad name=x=1'"), out
  code, out = _launch(
    "--config=configs/smoke.py", f"--workdir={tmp_path / 'w'}", "--variant=a=", "--variant=b=optim.lrr=1"
  )
  assert code == 1 and "optim.lrr" in out.strip().splitlines()[-1], out
  assert not os.path.exists(tmp_path / "w" / "a")  # refused before anything ran


# ---------------------------------------------------------------------------------------------
# End to end: a tiny real grid.
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_real_grid_end_to_end(tmp_path):
  out, scores = tmp_path / "out", tmp_path / "scores"
  args = [
    "--config=configs/smoke.py",
    f"--workdir={out}",
    f"--scores_dir={scores}",
    "--variant=base=",
    "--variant=lr=optim.lr=0.003",
    "--seeds=0,1",
    "--steps=4",
    "--flags=" + ",".join([*TINY_MODEL, "--config.log_every_steps=2", "--config.optim.warmup_steps=0"]),
  ]
  code, text = _launch(*args)
  assert code == 0, text[-3000:]
  for v in ("base", "lr"):
    for s in (0, 1):
      assert (out / v / f"seed{s}" / "scores.json").is_file() and (scores / v / f"seed{s}.json").is_file()
  md = (out / "paired.md").read_text()
  assert "| base (baseline) |" in md and "| lr |" in md and "4 steps x 16 images = 64 images" in md
  assert "the whole train split (1433 images)" in md and "4 of 4 scored" in md
  assert (out / "paired.png").stat().st_size > 0 and (scores / "paired.md").read_text() == md
  rec = json.loads((scores / "lr" / "seed1.json").read_text())
  assert {KNN, PROBE, "train/loss", "train/loss_level_0", "run/wall_s"} <= set(rec["metrics"])
  code, again = _launch(*args)  # everything scored: nothing retrained
  assert code == 0 and "scored already" in again and "training:" not in again
