"""Paired multi-seed comparisons: several variants x several seeds at one budget, scored offline, with intervals.

A variant is a name and dotted config overrides. Every (variant, seed) is one `launch/main.py` run of the same base
config with `--config.seed=K`: the same seed gives every variant the same initialisation, data order and masks, so
the difference variant - baseline on one seed is a paired sample. Runs go in seed-major order (seed 0 of every
variant, then seed 1, ...) so a partial table is paired as early as possible.

Layout under OUT:

    OUT/<variant>/seed<k>/              the run's workdir (checkpoints, summary.json, config.json, logs/)
    OUT/<variant>/seed<k>/scores.json   its scores (the record below); failed.json after a failure
    OUT/<variant>/seed<k>.log           training and scoring output, appended
    SCORES_DIR/<variant>/seed<k>.json   the same record (seed<k>.failed.json), small enough to commit

Everything is resumable: a run with scores is skipped, a finished run (summary.json) is only scored, any other run
is trained by the same command, which resumes from its newest checkpoint. The report needs only the records, so a
fresh machine continues the table from a committed SCORES_DIR. Scores: `launch/evaluate.py` per encoder
(a process of its own, so the accelerator's memory is free again for the next training run) on the whole train
split (the k-NN bank, the linear probe's training set) and the whole test split. Statistics: mean and std
(ddof=1) per variant; the paired difference to the baseline over the seeds both have, with a Student-t 95%
interval (no interval from one seed). Plain Python and numpy: no jax, no TensorFlow, matplotlib only to plot.
"""

import ast
import dataclasses
import datetime
import json
import math
import os
import platform
import re
import shlex
import subprocess
import sys

import numpy as np

from hjepa_jax import ablation, jsonfile, report
from hjepa_jax.tools import figures, monitor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCH_EVALUATE = os.path.join(ROOT, "launch", "evaluate.py")
EVAL_TYPES = ("knn", "linear_probe")
ENCODERS = ("target", "online")  # evaluation.runner.ENCODERS (that module imports jax)
HEADLINE = ("target/avgpool/knn_top1_k20", "target/avgpool/linear_probe_top1")
WHOLE_SPLIT = 10**9  # --max_examples that keeps every image, for a run whose config caps data.eval_max_examples
# Metrics of summary.json kept per run (their final logged values) besides the offline scores.
TRAIN_METRICS = re.compile(r"train/(loss|jepa_loss|loss_level_\d+|pos_floor_level_\d+)$")
HIDDEN = ("_best_lr", "_best_weight_decay")  # in paired.json, not in the markdown: chosen, not measured
_NAME = re.compile(r"[A-Za-z0-9_.-]+$")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class PairedError(ValueError):
  """A request that cannot be run or reported as given; the message says what to do instead."""


# ---------------------------------------------------------------------------------------------
# Variants, runs and their commands.
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Variant:
  name: str
  overrides: dict = dataclasses.field(default_factory=dict)


def parse_value(text):
  """A python literal (numbers, booleans, None, tuples, quoted strings) where `text` is one, else the string."""
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
    return text


def parse_variant(text):
  """`NAME=key=value key2=value2` (or `NAME=` / `NAME`: no overrides) -> Variant. Values: `parse_value`."""
  name, _, rest = text.partition("=")
  name = name.strip()
  if not _NAME.match(name):
    raise PairedError(f"variant {text!r}: the name must be letters, digits, '_', '.' or '-' (NAME=key=value ...)")
  overrides = {}
  try:
    tokens = shlex.split(rest)
  except ValueError as e:
    raise PairedError(f"variant {text!r}: {e}") from None
  for token in tokens:
    key, eq, value = token.partition("=")
    if not eq or not _KEY.match(key):
      raise PairedError(f"variant {text!r}: {token!r} is not key=value (e.g. {name}=loss.num_hierarchies=1)")
    if key in overrides:
      raise PairedError(f"variant {text!r}: {key} is set twice")
    overrides[key] = parse_value(value)
  return Variant(name, overrides)


def check_variants(variants, baseline=None):
  """The variants (unique names) and the baseline's name (default: the first)."""
  names = [v.name for v in variants]
  if not names:
    raise PairedError("give at least one variant (--variant=NAME=key=value ...)")
  if len(set(names)) < len(names):
    raise PairedError(f"variant names must differ: {', '.join(names)}")
  baseline = baseline or names[0]
  if baseline not in names:
    raise PairedError(f"baseline {baseline!r} is not one of the variants {', '.join(names)}")
  return baseline


def run_dir(out, variant, seed):
  return os.path.join(out, variant, f"seed{seed}")


def log_path(out, variant, seed):
  return os.path.join(out, variant, f"seed{seed}.log")


def _nice(niceness):
  return ["nice", "-n", str(int(niceness))] if niceness else []


def train_command(config, workdir, seed, overrides, steps=None, extra_flags=(), niceness=0):
  """The `launch/main.py` command of one run; steps=None trains the config's own epochs."""
  return [
    *_nice(niceness),
    sys.executable,
    ablation.LAUNCH_MAIN,
    f"--config={config}",
    f"--workdir={workdir}",
    f"--config.seed={seed}",
    "--config.eval.every_epochs=0",
    "--config.best_metric=",
    *([f"--config.total_steps={steps}"] if steps else []),
    *extra_flags,
    *(ablation._flag(k, v) for k, v in overrides.items()),  # pylint: disable=protected-access
  ]


def score_command(workdir, encoder, feature_kinds, eval_types=EVAL_TYPES, max_examples=None, niceness=0):
  """The `launch/evaluate.py` command scoring one encoder of a run's newest checkpoint."""
  return [
    *_nice(niceness),
    sys.executable,
    LAUNCH_EVALUATE,
    f"--workdir={workdir}",
    f"--eval_types={','.join(eval_types)}",
    f"--encoder={encoder}",
    f"--feature_kinds={','.join(feature_kinds)}",
    *([f"--max_examples={max_examples}"] if max_examples is not None else []),
  ]


def whole_split_max_examples(workdir):
  """--max_examples for whole splits: None (the default) unless the run's config caps data.eval_max_examples."""
  cfg = jsonfile.read(os.path.join(workdir, "config.json")) or {}
  return None if cfg.get("data", {}).get("eval_max_examples") is None else WHOLE_SPLIT


def normalize_config(config):
  """`path[:arg]` with the path relative to the repository when inside it, so two checkouts compare equal."""
  path, sep, arg = config.partition(":")
  path = os.path.abspath(path)
  if path.startswith(ROOT + os.sep):
    path = os.path.relpath(path, ROOT)
  return path + sep + arg


def make_request(config, overrides, steps=None, extra_flags=()):
  """What makes runs comparable: base config, overrides, budget, extra flags (JSON-normalised)."""
  return json.loads(
    json.dumps(
      {
        "config": normalize_config(config),
        "overrides": overrides,
        "steps": steps,
        "extra_flags": list(extra_flags),
      }
    )
  )


# ---------------------------------------------------------------------------------------------
# What a run recorded, and its scores.
# ---------------------------------------------------------------------------------------------


def run_facts(workdir):
  """From summary.json, config.json and logs/training.log: finished?, the budget, final losses, wall time, backend."""
  summary = jsonfile.read(os.path.join(workdir, "summary.json")) or {}
  cfg = jsonfile.read(os.path.join(workdir, "config.json")) or {}
  log_file = os.path.join(workdir, "logs", "training.log")
  text = open(log_file, errors="replace").read() if os.path.isfile(log_file) else ""
  log = report.log_facts(text)  # the wall time of every session, the backend
  last = summary.get("metrics", {})
  steps = summary.get("step")
  batch = None
  if "data" in cfg:
    batch = int(cfg["data"]["batch_size"]) * int(cfg.get("optim", {}).get("grad_accum_steps", 1) or 1)
  metrics = {k: float(v) for k, v in last.items() if TRAIN_METRICS.match(k) and _is_number(v)}
  for key, name in (("run/steps_per_sec", "train/steps_per_sec"), ("run/peak_memory_mb", "train/peak_memory_mb")):
    if _is_number(last.get(name)):
      metrics[key] = float(last[name])
  if (rate := median_logged_rate(text)) is not None:
    metrics["run/steps_per_sec"] = rate
  if log["wall_s"]:
    metrics["run/wall_s"] = round(float(log["wall_s"]), 1)
  epochs = last.get("train/epoch")
  return {
    "finished": bool(summary.get("finished")),
    "budget": {
      "steps": steps,
      "batch": batch,
      "images": steps * batch if steps is not None and batch else None,
      "epochs": round(float(epochs), 4) if _is_number(epochs) else None,
    },
    "metrics": metrics,
    "backend": log["backend"],
  }


def median_logged_rate(text):
  """The median steps/s of a training log's progress lines (every session), or None without any. Why not the
  summary's: that is the last window's rate, so a test suite or a compile beside its final minute moves a run's
  cost by 2x; the median of the whole run is what the run's time cost was."""
  rates = [r.steps_per_sec for r in monitor.parse_log(text).records if math.isfinite(r.steps_per_sec)]
  return float(np.median(rates)) if rates else None


def _is_number(v):
  return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def flat_metrics(results, encoder):
  """{`encoder/feature/metric`: value} of an evaluate_run results dict (numbers only, no _ci95)."""
  out = {}
  for kind, metrics in results.get("metrics", {}).items():
    for name, value in metrics.items():
      if _is_number(value) and not name.endswith("_ci95"):
        out[f"{encoder}/{kind}/{name}"] = float(value)
  return out


def _has_checkpoints(workdir):
  ckpts = os.path.join(workdir, "checkpoints")
  return os.path.isdir(ckpts) and bool(os.listdir(ckpts))


def _log_tail_error(path, start):
  """The last non-empty line `path` got after byte `start`: the error line of a failed command."""
  try:
    with open(path, errors="replace") as f:
      f.seek(start)
      lines = [line.strip() for line in f.read().splitlines() if line.strip()]
  except OSError:
    return None
  return lines[-1] if lines else None


def _log_size(path):
  return os.path.getsize(path) if os.path.isfile(path) else 0


def default_train(job):
  """Runs the job's training command, output appended to its log; returns the exit code."""
  os.makedirs(os.path.dirname(job["log"]), exist_ok=True)
  with open(job["log"], "a") as f:
    f.write(f"\n$ {shlex.join(job['command'])}\n")
    f.flush()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run(job["command"], stdout=f, stderr=subprocess.STDOUT, env=env, check=False).returncode


def default_score(job, encoder, feature_kinds):
  """Scores one encoder of the job's run with `launch/evaluate.py` on whole splits; returns its results dict."""
  cmd = score_command(
    job["workdir"],
    encoder,
    feature_kinds,
    job["eval_types"],
    max_examples=whole_split_max_examples(job["workdir"]),
    niceness=job["niceness"],
  )
  proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
  with open(job["log"], "a") as f:
    f.write(f"\n$ {shlex.join(cmd)}\n{proc.stdout}")
  lines = [line.strip() for line in proc.stdout.splitlines() if line.strip()]
  if proc.returncode != 0:
    raise RuntimeError(lines[-1] if lines else f"launch/evaluate.py exited with {proc.returncode}")
  saved = [line[len("saved ") :] for line in lines if line.startswith("saved ")]
  if not saved:
    raise RuntimeError("launch/evaluate.py did not say where it saved the results")
  results = jsonfile.read(saved[-1])
  if results is None:
    raise RuntimeError(f"launch/evaluate.py saved {saved[-1]}, but it cannot be read as JSON")
  return results


# ---------------------------------------------------------------------------------------------
# Running the grid.
# ---------------------------------------------------------------------------------------------


def plan(variants, seeds):
  """(variant, seed) pairs in seed-major order."""
  return [(v, s) for s in seeds for v in variants]


def _paths(out, scores_dir, variant, seed):
  wd = run_dir(out, variant, seed) if out else None
  return {
    "scores": os.path.join(wd, "scores.json") if wd else None,
    "failed": os.path.join(wd, "failed.json") if wd else None,
    "copy": os.path.join(scores_dir, variant, f"seed{seed}.json") if scores_dir else None,
    "copy_failed": os.path.join(scores_dir, variant, f"seed{seed}.failed.json") if scores_dir else None,
  }


def read_record(out, scores_dir, variant, seed):
  """The scores record of a run (from its workdir, else the scores_dir copy), else its failure record, else None."""
  p = _paths(out, scores_dir, variant, seed)
  for key in ("scores", "copy", "failed", "copy_failed"):
    if p[key] and (rec := jsonfile.read(p[key])) is not None:
      return rec
  return None


def _save_record(out, scores_dir, rec):
  p = _paths(out, scores_dir, rec["variant"], rec["seed"])
  ok = rec["status"] == "ok"
  for key in ("scores", "copy") if ok else ("failed", "copy_failed"):
    if p[key]:
      jsonfile.write(p[key], rec)
  if ok:
    for key in ("failed", "copy_failed"):
      if p[key] and os.path.exists(p[key]):
        os.remove(p[key])


def _check_request(where, found, wanted):
  if found is not None and found != wanted:
    raise PairedError(
      f"{where} was made with {json.dumps(found)}, not {json.dumps(wanted)}: "
      "use another --workdir/--scores_dir, or move those runs away"
    )


def _now():
  return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def run_paired(
  config,
  out,
  variants,
  seeds,
  *,
  steps=None,
  encoders=("target",),
  feature_kinds=("avgpool",),
  eval_types=EVAL_TYPES,
  scores_dir=None,
  niceness=0,
  extra_flags=(),
  train_fn=default_train,
  score_fn=default_score,
  log=print,
):
  """Trains and scores every (variant, seed) not yet scored, seed-major; returns their records in that order.

  `train_fn(job) -> exit code` and `score_fn(job, encoder, feature_kinds) -> evaluate_run results` do the work
  (defaults: subprocesses); a job is a dict: variant, seed, overrides, workdir, log, command, eval_types, niceness.
  A run whose scores exist is skipped (and scored only for an encoder or feature kind it lacks, while its
  checkpoints are here); a finished run is only scored; a failure is recorded and the others go on.
  """
  check_variants(variants)
  encoders, feature_kinds = tuple(encoders), tuple(feature_kinds)
  jobs = []
  for variant, seed in plan(variants, seeds):
    request = make_request(config, variant.overrides, steps, extra_flags)
    workdir = run_dir(out, variant.name, seed)
    job = {
      "variant": variant.name,
      "seed": int(seed),
      "overrides": variant.overrides,
      "request": request,
      "workdir": workdir,
      "log": log_path(out, variant.name, seed),
      "command": train_command(config, workdir, seed, variant.overrides, steps, extra_flags, niceness),
      "eval_types": tuple(eval_types),
      "niceness": niceness,
    }
    # Everything that would mix incomparable runs fails now, before anything runs.
    existing = read_record(out, scores_dir, variant.name, seed)
    _check_request(f"{variant.name}/seed{seed}", existing and existing.get("request"), request)
    marker = os.path.join(workdir, "paired_request.json")
    _check_request(marker, jsonfile.read(marker), request)
    jobs.append((job, existing))

  records = []
  for job, existing in jobs:
    name = f"{job['variant']}/seed{job['seed']}"
    want = [[e, k] for e in encoders for k in feature_kinds]
    if existing is not None and existing["status"] == "ok":
      missing = [p for p in want if p not in existing["scoring"]["scored"]]
      if not missing or not _has_checkpoints(job["workdir"]):
        note = f" (lacks {missing}: its checkpoints are not here)" if missing else ""
        log(f"{name}: scored already{note}")
        records.append(existing)
        continue
    else:
      missing = want
    try:
      scored = existing if existing is not None and existing["status"] == "ok" else None
      rec = _train_and_score(job, scored, missing, steps, train_fn, score_fn, log)
    except Exception as e:  # noqa: BLE001  (one run's failure must not stop the grid)
      stage, message = getattr(e, "stage", "score"), str(e).strip().splitlines()
      rec = {
        "variant": job["variant"],
        "seed": job["seed"],
        "status": "failed",
        "stage": stage,
        "error": message[-1] if message else type(e).__name__,
        "request": job["request"],
        "at": _now(),
      }
      log(f"{name}: FAILED ({stage}): {rec['error']}")
    _save_record(out, scores_dir, rec)
    records.append(rec)
  return records


class _TrainError(RuntimeError):
  stage = "train"


def _train_and_score(job, existing, missing, steps, train_fn, score_fn, log):
  name = f"{job['variant']}/seed{job['seed']}"
  workdir = job["workdir"]
  os.makedirs(workdir, exist_ok=True)
  jsonfile.write(os.path.join(workdir, "paired_request.json"), job["request"])
  facts = run_facts(workdir)
  if existing is None:
    done = facts["finished"] and (steps is None or facts["budget"]["steps"] == steps)
    if done:
      log(f"{name}: trained already (step {facts['budget']['steps']}); scoring")
    else:
      log(f"{name}: training: {shlex.join(job['command'])}")
      start = _log_size(job["log"])
      code = train_fn(job)
      if code != 0:
        raise _TrainError(_log_tail_error(job["log"], start) or f"launch/main.py exited with {code}")
      facts = run_facts(workdir)
      if not facts["finished"]:
        raise _TrainError(f"stopped at step {facts['budget']['steps']} before the end of its budget: rerun to resume")
  metrics = dict(existing["metrics"]) if existing else {}
  metrics.update(facts["metrics"])
  scoring = dict(existing["scoring"]) if existing else {"scored": []}
  by_encoder = {}
  for encoder, kind in missing:
    by_encoder.setdefault(encoder, []).append(kind)
  for encoder, kinds in by_encoder.items():
    log(f"{name}: scoring the {encoder} encoder ({', '.join(kinds)})")
    results = score_fn(job, encoder, tuple(kinds))
    if facts["budget"]["steps"] is not None and results.get("step") != facts["budget"]["steps"]:
      raise RuntimeError(f"scored checkpoint {results.get('step')}, but the run ended at {facts['budget']['steps']}")
    sizes = {role: s.get("size") for role, s in results.get("splits", {}).items()}
    cap = results.get("max_examples")
    scoring.update(
      dataset=results.get("dataset"),
      splits=results.get("splits"),
      whole_splits=cap is None or all(size is not None and cap >= size for size in sizes.values()),
      step=results.get("step"),
      eval_types=list(job["eval_types"]),
    )
    scoring["scored"] = scoring["scored"] + [[encoder, k] for k in kinds]
    metrics.update(flat_metrics(results, encoder))
  rec = {
    "variant": job["variant"],
    "seed": job["seed"],
    "status": "ok",
    "request": job["request"],
    "workdir": os.path.join(job["variant"], f"seed{job['seed']}"),
    "command": job["command"],
    "budget": facts["budget"],
    "metrics": dict(sorted(metrics.items())),
    "scoring": scoring,
    "machine": {"host": platform.node(), "cpus": os.cpu_count(), "backend": facts["backend"]},
    "scored_at": _now(),
  }
  headline = ", ".join(f"{k} {v:.4f}" for k, v in rec["metrics"].items() if k in HEADLINE)
  log(f"{name}: scored{': ' + headline if headline else ''}")
  return rec


def load_records(variants, seeds, out=None, scores_dir=None):
  """Every planned run's record (seed-major), a `pending` one for runs with none yet: what the report reads."""
  records = []
  for variant, seed in plan(variants, seeds):
    rec = read_record(out, scores_dir, variant.name, seed)
    records.append(rec or {"variant": variant.name, "seed": int(seed), "status": "pending"})
  return records


def discover(out=None, scores_dir=None):
  """(variants, seeds) found on disk: OUT/<variant>/seed<k>/scores.json and SCORES_DIR/<variant>/seed<k>.json."""
  found = {}
  patterns = []
  if out:
    patterns.append((out, re.compile(r"seed(\d+)$"), ("scores.json", "failed.json")))
  if scores_dir:
    patterns.append((scores_dir, re.compile(r"seed(\d+)(\.failed)?\.json$"), None))
  for root, pattern, inside in patterns:
    if not os.path.isdir(root):
      continue
    for variant in sorted(os.listdir(root)):
      folder = os.path.join(root, variant)
      if not (os.path.isdir(folder) and _NAME.match(variant)):
        continue
      for entry in os.listdir(folder):
        m = pattern.match(entry)
        if not m:
          continue
        paths = [os.path.join(folder, entry, f) for f in inside] if inside else [os.path.join(folder, entry)]
        for path in paths:
          rec = jsonfile.read(path)
          if rec is not None:
            seeds, overrides = found.setdefault(variant, (set(), rec.get("request", {}).get("overrides", {})))
            seeds.add(int(m.group(1)))
  variants = [Variant(name, overrides) for name, (_, overrides) in found.items()]
  seeds = sorted(set().union(*(s for s, _ in found.values()))) if found else []
  return variants, seeds


# ---------------------------------------------------------------------------------------------
# Statistics.
# ---------------------------------------------------------------------------------------------

# Student's t, 0.975 quantile, df = 1..30 (scipy.stats.t.ppf); beyond, the Cornish-Fisher expansion (error < 1e-7).
_T975 = (
  12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004, 2.262157, 2.228139,
  2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905, 2.109816, 2.100922, 2.093024, 2.085963,
  2.079614, 2.073873, 2.068658, 2.063899, 2.059539, 2.055529, 2.051831, 2.048407, 2.045230, 2.042272,
)  # fmt: skip
_Z975 = 1.959963984540054


def t_quantile_975(df):
  """The 0.975 quantile of Student's t with `df` degrees of freedom (the 95% two-sided interval's factor)."""
  if df < 1 or int(df) != df:
    raise ValueError(f"degrees of freedom must be a positive integer, got {df}")
  df = int(df)
  if df <= len(_T975):
    return _T975[df - 1]
  z, v = _Z975, float(df)
  return (
    z
    + (z**3 + z) / (4 * v)
    + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * v**2)
    + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * v**3)
    + (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / (92160 * v**4)
  )


def mean_std(values):
  """{"n", "mean", "std"} (std with ddof=1; None for fewer than 2 values, mean None for none)."""
  x = np.asarray(list(values), np.float64)
  n = int(x.size)
  return {
    "n": n,
    "mean": float(x.mean()) if n else None,
    "std": float(x.std(ddof=1)) if n > 1 else None,
  }


def paired_difference(values, baseline_values):
  """Paired difference over the seeds both dicts ({seed: value}) have: mean, std, n, 95% t-interval.

  `ci95` is None below two pairs (`note` says why); `significant` only when the interval excludes 0.
  """
  seeds = sorted(set(values) & set(baseline_values))
  diffs = [float(values[s]) - float(baseline_values[s]) for s in seeds]
  stats = mean_std(diffs)
  out = {
    "n": stats["n"],
    "seeds": seeds,
    "diffs": diffs,
    "mean": stats["mean"],
    "std": stats["std"],
    "ci95": None,
    "significant": False,
    "note": None,
  }
  if stats["n"] == 0:
    out["note"] = "no common seed"
  elif stats["n"] == 1:
    out["note"] = "n=1: no interval"
  else:
    half = t_quantile_975(stats["n"] - 1) * stats["std"] / math.sqrt(stats["n"])
    lo, hi = stats["mean"] - half, stats["mean"] + half
    out["ci95"] = [lo, hi]
    out["significant"] = bool(lo > 0 or hi < 0)
  return out


def _metric_order(key, headline):
  if key in headline:
    return (0, headline.index(key), key)
  group = 3 if key.startswith("run/") else 2 if key.startswith("train/") else 1
  return (group, 0, key)


def default_headline(records):
  """HEADLINE where the records have it, else the k-NN@20 and linear probe of the first encoder/feature scored."""
  keys = {k for r in records if r["status"] == "ok" for k in r["metrics"]}
  if any(k in keys for k in HEADLINE) or not keys:
    return list(HEADLINE)
  out = []
  for suffix in ("/knn_top1_k20", "/linear_probe_top1"):
    out += sorted(k for k in keys if k.endswith(suffix))[:1]
  return out


def per_seed(records, variant, metric):
  """{seed: value} of `metric` over the records of `variant` that have it."""
  return {r["seed"]: r["metrics"][metric] for r in records if r["variant"] == variant and metric in r["metrics"]}


def summarize(records, variants, baseline, headline=None):
  """Per metric: {variant: n, mean, std, seeds, values}, and per non-baseline variant the paired difference."""
  names = [v.name if isinstance(v, Variant) else v for v in variants]
  headline = list(headline) if headline else default_headline(records)
  ok = [r for r in records if r["status"] == "ok"]
  keys = sorted({k for r in ok for k in r["metrics"]} | set(headline), key=lambda k: _metric_order(k, headline))
  per = {k: {n: per_seed(ok, n, k) for n in names} for k in keys}
  stats, paired = {}, {}
  for k in keys:
    stats[k] = {}
    for n in names:
      seeds = sorted(per[k][n])
      stats[k][n] = dict(mean_std(per[k][n][s] for s in seeds), seeds=seeds, values=[per[k][n][s] for s in seeds])
    paired[k] = {n: paired_difference(per[k][n], per[k][baseline]) for n in names if n != baseline}
  return {
    "baseline": baseline,
    "variants": names,
    "headline": headline,
    "metrics": keys,
    "stats": stats,
    "paired": paired,
  }


# ---------------------------------------------------------------------------------------------
# The report: markdown, figure, json.
# ---------------------------------------------------------------------------------------------


def _decimals(*values):
  """Decimals for a cell: fewer for larger numbers, the same for every number of the cell."""
  top = max((abs(v) for v in values if v is not None), default=0.0)
  return 0 if top >= 1000 else 2 if top >= 10 else 4


def _num(v, signed=False, decimals=None):
  if v is None:
    return "-"
  decimals = _decimals(v) if decimals is None else decimals
  return f"{v:{'+' if signed else ''},.{decimals}f}"


def _mean_cell(s):
  if not s["n"]:
    return "-"
  dec = _decimals(s["mean"])
  return f"{_num(s['mean'], decimals=dec)} ± {_num(s['std'], decimals=dec)} ({s['n']})"


def _diff_cell(d):
  if d["n"] == 0:
    return d["note"]
  if d["ci95"] is None:
    return f"{_num(d['mean'], True)} ({d['note']})"
  lo, hi = d["ci95"]
  dec = _decimals(d["mean"], lo, hi)
  cell = f"{_num(d['mean'], True, dec)} [{_num(lo, True, dec)}, {_num(hi, True, dec)}]"
  return cell + (" *" if d["significant"] else "")


def _overrides_text(overrides):
  return " ".join(f"`{k}={v}`" for k, v in overrides.items()) or "(the base config)"


def _budget_line(ok, request):
  budgets = {}
  for r in ok:
    b = r["budget"]
    budgets.setdefault((b["steps"], b["batch"], b["images"], b["epochs"]), []).append(f"{r['variant']}/{r['seed']}")
  asked = f"total_steps={request['steps']}" if request and request.get("steps") else "the config's own epochs"
  if not budgets:
    return f"- Budget: {asked} (no run finished yet)"
  lines = []
  for (steps, batch, images, epochs), runs in budgets.items():
    what = f"{steps} steps x {batch} images = {images:,} images" if images else f"{steps} steps"
    what += f" ({epochs:g} epochs)" if epochs is not None else ""
    lines.append(what if len(budgets) == 1 else f"{what}: {', '.join(runs)}")
  if len(budgets) == 1:
    return f"- Budget, equal for every run: {lines[0]}; requested: {asked}"
  return f"- Budget: **NOT EQUAL** across runs (requested: {asked}): " + "; ".join(lines)


def _machine_line(ok):
  machines = sorted(
    {
      (r["machine"].get("host"), r["machine"].get("cpus"), r["machine"].get("backend") or "backend unknown") for r in ok
    },
    key=str,
  )
  if not machines:
    return f"- Machine: no run scored yet (this one: {platform.node()}, {os.cpu_count()} CPUs)"
  return "- Machine: " + "; ".join(f"{h} ({c} CPUs), {b}" for h, c, b in machines)


def _scoring_line(ok):
  protocols = set()
  for r in ok:
    s = r["scoring"]
    splits = s.get("splits") or {}
    train, test = splits.get("train", {}), splits.get("test", {})
    protocols.add(
      (
        s.get("dataset"),
        train.get("split"),
        train.get("size"),
        test.get("split"),
        test.get("size"),
        bool(s.get("whole_splits")),
      )
    )
  scored = sorted({f"{e} encoder / {k}" for r in ok for e, k in r["scoring"]["scored"]})
  types = sorted({t for r in ok for t in r["scoring"].get("eval_types", [])})
  if not protocols:
    return "- Scoring: offline after training, whole train split as the k-NN bank, whole test split (none scored yet)"
  parts = []
  for dataset, tr, trn, te, ten, whole in sorted(protocols, key=str):
    what = "the whole" if whole else "a SUBSET of the"
    parts.append(
      f"{dataset}: {what} {tr} split ({trn} images) as the k-NN bank and the linear probe's training set, "
      f"{what} {te} split ({ten} images) scored"
    )
  note = "" if len(protocols) == 1 else " **(runs were scored on different data)**"
  return (
    f"- Scoring: offline, the final checkpoint of each run ({', '.join(types)}; {', '.join(scored)}); "
    + "; ".join(parts)
    + note
  )


def format_markdown(summary, records, variants, seeds, request=None):
  """The report: what was compared and how, the headline table, every metric, every run."""
  names = summary["variants"]
  base = summary["baseline"]
  overrides = {v.name: v.overrides for v in variants}
  ok = [r for r in records if r["status"] == "ok"]
  failed = [r for r in records if r["status"] == "failed"]
  pending = [r for r in records if r["status"] == "pending"]
  request = request or next((r["request"] for r in records if r.get("request")), None)
  config = request["config"] if request else "?"
  flags_text = " " + " ".join(f"`{f}`" for f in request["extra_flags"]) if request and request["extra_flags"] else ""
  lines = [
    f"# Paired comparison: {', '.join(n for n in names if n != base) or '-'} vs `{base}`",
    "",
    f"- Base config: `{config}`{flags_text}",
    _budget_line(ok, request),
    f"- Seeds: {', '.join(str(s) for s in seeds)} (paired: a seed gives every variant the same init, data order "
    "and masks)",
    _machine_line(ok),
    _scoring_line(ok),
    f"- Runs: {len(ok)} of {len(records)} scored, {len(failed)} failed, {len(pending)} pending",
    "- Δ = variant - baseline on the same seed: mean [Student-t 95% interval]; * where the interval excludes 0",
    "",
    "| variant | overrides |",
    "|:---|:---|",
  ]
  lines += [f"| {n}{' (baseline)' if n == base else ''} | {_overrides_text(overrides.get(n, {}))} |" for n in names]
  lines += ["", "## Headline", ""]
  head = summary["headline"]
  header = ["variant"]
  for k in head:
    header += [f"{k} mean ± std (n)", f"Δ {k} [95% CI]"]
  header += ["train wall (min)", "steps/s"]
  lines += ["| " + " | ".join(header) + " |", "|:---|" + "---:|" * (len(header) - 1)]
  for n in names:
    cells = [n]
    for k in head:
      cells.append(_mean_cell(summary["stats"][k][n]))
      cells.append("baseline" if n == base else _diff_cell(summary["paired"][k][n]))
    wall = summary["stats"].get("run/wall_s", {}).get(n)
    rate = summary["stats"].get("run/steps_per_sec", {}).get(n)
    cells.append(f"{wall['mean'] / 60:.1f}" if wall and wall["n"] else "-")
    cells.append(f"{rate['mean']:.2f}" if rate and rate["n"] else "-")
    lines.append("| " + " | ".join(cells) + " |")
  others = [n for n in names if n != base]
  lines += ["", "## Every metric", ""]
  header = ["metric", f"{base} (baseline)"] + [f"{n}: mean ± std (n)" for n in others] + [f"Δ {n}" for n in others]
  lines += ["| " + " | ".join(header) + " |", "|:---|" + "---:|" * (len(header) - 1)]
  for k in summary["metrics"]:
    if k.endswith(HIDDEN):
      continue
    cells = [k, _mean_cell(summary["stats"][k][base])]
    cells += [_mean_cell(summary["stats"][k][n]) for n in others]
    cells += [_diff_cell(summary["paired"][k][n]) for n in others]
    lines.append("| " + " | ".join(cells) + " |")
  lines += ["", "## Runs", ""]
  header = ["variant", "seed", "status", "steps", "epochs", "wall (min)", "steps/s", "peak MiB", *head]
  lines += ["| " + " | ".join(header) + " |", "|:---|---:|:---|" + "---:|" * (len(header) - 3)]
  for r in records:
    if r["status"] != "ok":
      status = "pending" if r["status"] == "pending" else f"FAILED ({r.get('stage')}): {r.get('error')}"
      lines.append(f"| {r['variant']} | {r['seed']} | {status} |" + " |" * (len(header) - 3))
      continue
    m, b = r["metrics"], r["budget"]
    cells = [r["variant"], str(r["seed"]), "ok", str(b["steps"]), f"{b['epochs']:g}" if b["epochs"] else "-"]
    cells.append(f"{m['run/wall_s'] / 60:.1f}" if "run/wall_s" in m else "-")
    cells.append(f"{m['run/steps_per_sec']:.2f}" if "run/steps_per_sec" in m else "-")
    cells.append(f"{m['run/peak_memory_mb']:.0f}" if "run/peak_memory_mb" in m else "-")
    cells += [_num(m.get(k)) for k in head]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def plot(summary, path):
  """PNG: per headline metric, each variant's paired difference to the baseline (mean, 95% interval, seeds)."""
  panels = []
  for k in summary["headline"]:
    rows = []
    for n, d in summary["paired"].get(k, {}).items():
      rows.append(
        {"label": n, "mean": d["mean"], "ci": d["ci95"], "points": d["diffs"], "significant": d["significant"]}
      )
    panels.append((k, rows))
  return figures.plot_intervals(
    panels,
    path,
    title=f"paired difference to {summary['baseline']} (95% t-interval; dots: seeds)",
    ylabel=f"variant - {summary['baseline']}",
  )


def build_report(records, variants, seeds, baseline, headline=None, request=None):
  """(markdown, summary) of the records."""
  summary = summarize(records, variants, baseline, headline)
  return format_markdown(summary, records, variants, seeds, request), summary


def write_report(dirs, markdown, summary, records, seeds):
  """Writes paired.md, paired.png and paired.json into each of `dirs` (None entries skipped); returns the paths."""
  written = []
  for d in dirs:
    if not d:
      continue
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "paired.md"), "w") as f:
      f.write(markdown)
    plot(summary, os.path.join(d, "paired.png"))
    jsonfile.write(os.path.join(d, "paired.json"), {"seeds": list(seeds), "summary": summary, "runs": records})
    written += [os.path.join(d, f"paired.{ext}") for ext in ("md", "png", "json")]
  return written
