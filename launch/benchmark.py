"""One prepared accelerator check: step micro-benchmarks, a time-boxed training run, k-NN and linear probe.

    python launch/benchmark.py --out=/tmp/bench [--data_pack=.bench_data/cifar10_subset.npz]
    python launch/benchmark.py --out=/tmp/bench_tiny --tiny          # CPU, about a minute
    python launch/benchmark.py --pack=.bench_data/cifar10_subset.npz --pack_from=$HJEPA_CIFAR10_DIR

Writes OUT/benchmark.json and OUT/benchmark.md (also printed), in two parts:

1. Micro-benchmarks of the H-JEPA update (`--models`: ViT-Ti/4 at 32 px and ViT-S/16 at 224 px, each built by
   hjepa_jax.experiment from a config file plus overrides) for every compute dtype x attention path x remat
   policy: compile seconds, step ms (median of --steps timed steps after --warmup, each waited for), images/s,
   peak memory (the device's peak_bytes_in_use, or the process's peak RSS where the device has no memory
   stats: the JSON says which), FLOPs per step from the compiled step's cost analysis, and MFU against the
   chip's dense peak (hjepa_jax/devices.py, with each figure's source). Each cell runs in a process of its own
   (its own peak memory; a crash or an error stays in its cell), in priority order (every attention path at
   remat none in bfloat16, then float32, then remat) until --bench_budget_s is spent; the rest are listed as
   skipped. This part imports no TensorFlow.
2. A time-boxed JEPA-only training run of --train_config (+ --train_set overrides): the configured step is timed
   first, total_steps is set to what fits in --train_budget_s, then hjepa_jax.train.train_and_evaluate runs in
   OUT/train, followed by k-NN and a linear probe (hjepa_jax.evaluation.runner) of the trained target encoder
   and of the random-init encoder, on the accelerator input path (`--pipeline=device`, data.pipeline), so
   no part of the command imports TensorFlow.

CIFAR-10 where the data folder cannot travel: `--pack` writes a seeded subset (default 16,000 train / 4,000 test
images, 32 MiB) to one .npz of lossless WebP mosaics, or with `--pack_part=I/N` the I-th of N slices of it (the
whole set, 97 MiB, travels as parts over two calls); `--data_pack` unpacks one or more of them under OUT as a
complete python-pickle layout (data_batch_1..5 hold the train images in five parts, test_batch the test images)
and points data.cifar10_dir at it. The whole command is sized by --budget_s (default 460 s: under 8 minutes).
"""

import datetime
import os
import platform as py_platform
import signal
import subprocess
import sys
import threading
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from absl import app, flags  # noqa: E402

from hjepa_jax import benchmark as bench  # noqa: E402
from hjepa_jax import devices  # noqa: E402
from hjepa_jax import jsonfile  # noqa: E402

TINY = dict(
  models=["tiny"],
  dtypes=["float32"],
  attention=["einsum", "xla"],
  remat=["none"],
  steps=3,
  warmup=1,
  train_budget_s=3.0,
  train_overhead_s=60.0,
  eval_examples=256,
  eval_feature_kinds=["avgpool"],
)
MIN_TRAIN_STEPS = 2
FORCED_TRAIN = {"eval.every_steps": 0, "best_metric": "", "log_mask_images": False}  # evaluation comes after
EVAL_TYPES = ("knn", "linear_probe")

_OUT = flags.DEFINE_string("out", None, "Output folder: benchmark.json, benchmark.md, cells/, train/.")
_TINY = flags.DEFINE_bool("tiny", False, "CPU check: a tiny model, 2 cells, a few steps, a few-second training run.")
_MODELS = flags.DEFINE_list("models", ["ti4_32", "s16_224"], f"Micro-benchmark models: {', '.join(bench.MODELS)}.")
_DTYPES = flags.DEFINE_list("dtypes", ["bfloat16", "float32"], "model.dtype values, in priority order.")
_ATTENTION = flags.DEFINE_list("attention", list(bench.ATTENTION), "Attention paths: einsum, xla, cudnn.")
_REMAT = flags.DEFINE_list("remat", ["none", "nothing_saveable"], "model.remat policies, in priority order.")
_LAYOUTS = flags.DEFINE_list(
  "layouts", [], f"model.predictor.layout values ({', '.join(bench.LAYOUTS)}); empty: each model's recipe."
)
_ONE_AT_A_TIME = flags.DEFINE_bool(
  "one_at_a_time", False, "Only the base cell (the first value of each list) and the cells that change one setting."
)
_ROUNDS = flags.DEFINE_integer("rounds", 1, "Measure the cells (and the reference) this many times, interleaved.")
_REFERENCE = flags.DEFINE_string(
  "reference",
  os.environ.get("IJEPA_REF_BENCH"),
  "ijepa_ref_bench.py (the official I-JEPA step): timed beside each model's cells where it can run that model.",
)
_REFERENCE_SRC = flags.DEFINE_string(
  "reference_src", os.environ.get("IJEPA_SRC"), "An extracted facebookresearch/ijepa (the reference imports its src/)."
)
_REFERENCE_PYTHON = flags.DEFINE_string("reference_python", sys.executable, "A Python with torch for the reference.")
_REFERENCE_THREADS = flags.DEFINE_integer(
  "reference_threads", 0, "torch threads of the reference (0: torch's default)."
)
_SET = flags.DEFINE_multi_string("set", [], "KEY=VALUE config override for every micro-benchmark cell.")
_STEPS = flags.DEFINE_integer("steps", 20, "Timed steps per cell (the median is reported).")
_WARMUP = flags.DEFINE_integer("warmup", 3, "Untimed steps after the first call, per cell.")
_BUDGET = flags.DEFINE_float("budget_s", 460.0, "Wall-time plan for the whole command (seconds).")
_BENCH_BUDGET = flags.DEFINE_float(
  "bench_budget_s", None, "Seconds for the cells (default: budget_s - train_budget_s - train_overhead_s)."
)
_CELL_TIMEOUT = flags.DEFINE_float("cell_timeout_s", 300.0, "A cell still running after this is killed (an error).")
_SKIP_BENCH = flags.DEFINE_bool("skip_bench", False, "Leave out the micro-benchmarks.")
_SKIP_TRAIN = flags.DEFINE_bool("skip_train", False, "Leave out the training run and its evaluation.")
_TRAIN_CONFIG = flags.DEFINE_string("train_config", "configs/smoke.py:dataset=cifar10_local", "Training recipe.")
_TRAIN_SET = flags.DEFINE_multi_string(
  "train_set", None, f"KEY=VALUE overrides of the training recipe (default: {' '.join(bench.TRAIN_SET)})."
)
_PIPELINE = flags.DEFINE_string(
  "pipeline", "device", "data.pipeline of the training run: device (augmentation in jit, no TensorFlow) | tfdata."
)
_TRAIN_BUDGET = flags.DEFINE_float("train_budget_s", 240.0, "Seconds of training steps (total_steps is set to fit).")
_TRAIN_OVERHEAD = flags.DEFINE_float(
  "train_overhead_s", 120.0, "Seconds kept for the training run's start, compiles, checkpoint and evaluation."
)
_EVAL_RESERVE = flags.DEFINE_float(
  "eval_reserve_s",
  90.0,
  "Seconds of the plan kept for the evaluation: training still running then is stopped"
  " (SIGTERM: it finishes the step and saves) and what it reached is evaluated.",
)
_EVAL_EXAMPLES = flags.DEFINE_integer("eval_examples", 10000, "Images per split for k-NN and the linear probe.")
_EVAL_KINDS = flags.DEFINE_list("eval_feature_kinds", ["avgpool", "last4"], "Features evaluated (runner kinds).")
_DATA_PACK = flags.DEFINE_list(
  "data_pack", None, "--pack files (comma-separated, joined in order): unpacked under OUT, used as data.cifar10_dir."
)
_PACK = flags.DEFINE_string("pack", None, "Write a compressed CIFAR-10 subset to this .npz and exit.")
_PACK_FROM = flags.DEFINE_string("pack_from", os.environ.get("HJEPA_CIFAR10_DIR"), "cifar-10-batches-py to pack.")
_PACK_TRAIN = flags.DEFINE_integer("pack_train", 16000, "Train images in the pack (a seeded random subset).")
_PACK_TEST = flags.DEFINE_integer("pack_test", 4000, "Test images in the pack (a seeded random subset; 0: none).")
_PACK_PART = flags.DEFINE_string(
  "pack_part",
  "1/1",
  "I/N: the pack holds the I-th of N equal slices of each split's subset (a set over the carry"
  " limit travels as N files).",
)
_WORKER = flags.DEFINE_enum("worker", None, ["cell", "train"], "Internal: run one part from --spec in this process.")
_SPEC = flags.DEFINE_string("spec", None, "Internal: the worker's spec (json); it writes SPEC.result.json.")


def _option(name, flag):
  """A flag's value, or the --tiny default where the flag was left at its own default."""
  return TINY[name] if _TINY.value and name in TINY and not flag.present else flag.value


def _now():
  return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _error_text(exc):
  return "".join(traceback.format_exception_only(type(exc), exc)).strip()


# ---------------------------------------------------------------------------------------------
# Workers: one cell, or the training run and its evaluation, each in a process of its own.
# ---------------------------------------------------------------------------------------------


def _device_info():
  import jax  # pylint: disable=g-import-not-at-top

  from hjepa_jax import platform  # pylint: disable=g-import-not-at-top

  plat = platform.detect()
  return {
    "backend": plat.backend,
    "device_kind": plat.device_kind,
    "chip": devices.chip_name(plat.backend, plat.device_kind),
    "num_devices": plat.num_devices,
    "jax": jax.__version__,
    "peak_memory_source": devices.memory_source(),
  }


def cell_worker(spec):
  """Measures one cell; a setting this backend cannot run is `skipped`, any other failure an `error`."""
  from hjepa_jax import platform, stepbench  # pylint: disable=g-import-not-at-top

  result = {"device": _device_info()}
  try:
    cfg = bench.build_config(spec["config"], spec["overrides"])
    result.update(stepbench.measure_step(cfg, steps=spec["steps"], warmup=spec["warmup"]), status="ok")
    result["peak_memory_mib"] = platform.peak_memory_mb()
  except platform.PlatformError as e:
    result.update(status="skipped", reason=str(e))
  result["tensorflow_imported"] = "tensorflow" in sys.modules
  return result


def train_worker(spec, save):
  """Times the recipe's step, trains for what fits in the budget, then evaluates trained and random init."""
  from hjepa_jax import stepbench  # pylint: disable=g-import-not-at-top

  result = {"device": _device_info(), "config": spec["config"], "overrides": spec["overrides"]}
  cfg = bench.build_config(spec["config"], {**spec["overrides"], **FORCED_TRAIN})
  timing = stepbench.measure_step(
    cfg, steps=spec["timing_steps"], warmup=spec["timing_warmup"], fresh_steps=spec["timing_steps"]
  )
  # Planned from the step on a new batch each time, nearer what the run sees (an H200 loop ran 2.1x the reused batch).
  timing["plan_ms"] = max(timing["step_ms"], timing["step_ms_fresh"])
  total = max(MIN_TRAIN_STEPS, int(spec["budget_s"] / (timing["plan_ms"] / 1e3)))
  keep = ("batch", "params", "compile_s", "step_ms", "step_ms_fresh", "plan_ms", "images_per_s")
  result.update(timing={k: timing[k] for k in keep})
  result.update(budget_s=spec["budget_s"], planned_steps=total)
  cfg.total_steps, cfg.ckpt_every_steps, cfg.log_every_steps = total, total, max(1, total // 10)
  save(result)

  from hjepa_jax.train import train_and_evaluate  # pylint: disable=g-import-not-at-top

  workdir = spec["workdir"]
  start = time.perf_counter()
  with _time_limit(spec.get("stop_at")) as limit:
    last = train_and_evaluate(cfg, workdir)
  result.update(train_wall_s=time.perf_counter() - start, last_metrics=last)
  result["steps"] = jsonfile.read(os.path.join(workdir, "summary.json"))["step"]
  if limit.fired:  # the real steps were slower than the synthetic ones the plan was made from
    result["stopped"] = f"by the time limit after {limit.after_s:.0f} s of training (planned {total} steps)"
  save(result)

  from hjepa_jax.evaluation import runner  # pylint: disable=g-import-not-at-top

  evals = result.setdefault("eval", {})
  for name, random_init in (("trained", False), ("random_init", True)):
    try:
      r = runner.evaluate_run(
        workdir,
        eval_types=EVAL_TYPES,
        random_init=random_init,
        max_examples=spec["eval_examples"],
        feature_kinds=spec["eval_feature_kinds"],
      )
      evals[name] = {k: r[k] for k in ("step", "source", "dataset", "splits", "metrics", "seconds", "notes")}
    except Exception as e:  # pylint: disable=broad-except  (recorded; the other evaluation still runs)
      evals[name] = {"error": _error_text(e)}
    save(result)
  if os.path.isfile(runner.results_path(workdir, ext="md")):
    with open(runner.results_path(workdir, ext="md")) as f:
      result["eval_table"] = f.read()
  return result


class _time_limit:  # pylint: disable=invalid-name  (used as a context manager)
  """SIGTERM to this process at `stop_at` (time.time()), unless the block ends first.

  The training loop treats SIGTERM as a stop request: it finishes the step, saves and returns, so a run slower
  than planned is evaluated where it got to instead of being killed with nothing saved (on 2026-12-04 an H200
  run's real batches went at half the synthetic step's rate and the old hard timeout lost both runs). Around
  the loop SIGTERM is ignored (its default action would kill the process), and the signal waits until the loop's
  handler is up."""

  def __init__(self, stop_at):
    self.stop_at, self.fired, self.after_s, self._timer = stop_at, False, 0.0, None

  def _arm(self, delay):
    self._timer = threading.Timer(max(0.0, delay), self._fire)
    self._timer.daemon = True
    self._timer.start()

  @staticmethod
  def _ignore(signum, frame):  # outside the loop a late SIGTERM does nothing (the default action would kill)
    del signum, frame

  def _fire(self):
    if self._done:
      return
    if signal.getsignal(signal.SIGTERM) is self._ignore:  # the loop's handler is not up (yet): wait for it
      self._arm(0.5)
      return
    self.fired, self.after_s = True, time.perf_counter() - self._start
    print(f"time limit: stopping the training run after {self.after_s:.0f} s (SIGTERM)", flush=True)
    os.kill(os.getpid(), signal.SIGTERM)

  def __enter__(self):
    self._start, self._done = time.perf_counter(), False
    if self.stop_at is not None:
      self._old = signal.signal(signal.SIGTERM, self._ignore)
      self._arm(self.stop_at - time.time())
    return self

  def __exit__(self, *exc):
    self._done = True
    if self._timer is not None:
      self._timer.cancel()
      signal.signal(signal.SIGTERM, self._old)


def run_worker(kind, spec_path):
  """Worker entry: the result (or the error that ended it) is saved after every phase."""
  spec = jsonfile.read(spec_path)
  out = f"{spec_path[: -len('.json')]}.result.json"
  result = {}

  def save(partial):
    result.update(partial)
    jsonfile.write(out, result, default=str)

  try:
    save(cell_worker(spec) if kind == "cell" else train_worker(spec, save))
  except Exception as e:  # pylint: disable=broad-except  (the parent records it in the cell or the run)
    traceback.print_exc()
    save({"status": "error", "error": _error_text(e), "tensorflow_imported": "tensorflow" in sys.modules})


def launch_worker(kind, spec, path, timeout):
  """Runs a worker process on `spec` (saved at PATH.json); returns its result, with an error if it failed."""
  jsonfile.write(f"{path}.json", spec, default=str)
  log = f"{path}.log"
  cmd = [sys.executable, os.path.abspath(__file__), f"--worker={kind}", f"--spec={path}.json"]
  start = time.perf_counter()
  with open(log, "w") as f:
    try:
      code = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, timeout=timeout, check=False).returncode
    except subprocess.TimeoutExpired:
      code = f"killed after the {timeout:.0f} s timeout"
  result = jsonfile.read(f"{path}.result.json") or {}
  result["wall_s"] = time.perf_counter() - start
  if code != 0 and result.get("status") != "error":
    with open(log) as f:
      tail = f.read().strip().splitlines()[-1:] or [""]
    result.update(status="error", error=f"worker exit {code}: {tail[0]}")
  result["log"] = os.path.relpath(log, os.path.dirname(os.path.dirname(path)))
  return result


# ---------------------------------------------------------------------------------------------
# Part 1: the cells.
# ---------------------------------------------------------------------------------------------


def run_cells(out, cells, overrides, steps, warmup, budget_s, timeout_s, tag="", log=print):
  """Measures `cells` in order (each in a process of its own) until `budget_s` is spent; TAG names a round."""
  os.makedirs(os.path.join(out, "cells"), exist_ok=True)
  start, backend, slowest = time.perf_counter(), None, {}
  for cell in cells:
    cell["config"], cell["overrides"] = bench.cell_config(cell, overrides)
    left = budget_s - (time.perf_counter() - start)
    reason = cell.get("reason") if cell.get("status") == "skipped" else bench.skip_reason(cell, backend)
    if reason is None and left < slowest.get(cell["model"], 0.0):
      reason = (
        f"the bench budget ({budget_s:.0f} s) is spent: {max(left, 0):.0f} s left, this model's cells take longer"
      )
    if reason:
      cell.update(status="skipped", reason=reason)
      log(f"  {bench.cell_name(cell)}: skipped ({reason})")
      continue
    path = os.path.join(out, "cells", bench.cell_name(cell).replace("/", "_") + tag)
    spec = dict(config=cell["config"], overrides=cell["overrides"], steps=steps, warmup=warmup)
    cell.update(launch_worker("cell", spec, path, timeout_s))
    backend = cell.get("device", {}).get("backend", backend)
    slowest[cell["model"]] = max(slowest.get(cell["model"], 0.0), cell["wall_s"])
    log(f"  {bench.cell_name(cell)}{tag}: {bench.cell_summary(cell)}")
  return cells


def plan_references(models, overrides):
  """Per model: the reference's flags and what differs, or why the reference cannot run it."""
  refs = {}
  for model in models:
    config, model_overrides = bench.cell_config(dict(model=model, dtype="float32", attention="xla", remat="none"), {})
    cfg = bench.build_config(config, {**model_overrides, **overrides})
    args, notes = bench.reference_args(cfg)
    refs[model] = {"args": args, "notes": notes} if args else {"status": "skipped", "reason": "; ".join(notes)}
  return refs


def run_reference(out, model, ref, dtype, steps, warmup, tag="", log=print):
  """One timing of the reference step for `model` (in `dtype`), in a process of its own.

  Our cells leave the first call (the compile) and `warmup` more untimed; the reference leaves warmup + 1."""
  args = {**ref["args"], "bf16": dtype == "bfloat16"}
  cmd = bench.reference_command(
    _REFERENCE_PYTHON.value, _REFERENCE.value, args, warmup + 1, steps, _REFERENCE_THREADS.value
  )
  env = {**os.environ, "IJEPA_SRC": _REFERENCE_SRC.value or ""}
  log_path = os.path.join(out, "cells", f"reference_{model}{tag}.log")
  start = time.perf_counter()
  try:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=_CELL_TIMEOUT.value, check=False)
    output = proc.stdout if proc.returncode == 0 else proc.stdout + proc.stderr
  except (OSError, subprocess.TimeoutExpired) as e:  # recorded like a failed cell; the rest still runs
    output = f"{type(e).__name__}: {e}"
  with open(log_path, "w") as f:
    f.write(output)
  result = bench.parse_reference_output(output)
  result.update(args=args, notes=ref["notes"], command=cmd, wall_s=time.perf_counter() - start)
  log(
    f"  reference {model}{tag}: "
    + (f"{result['step_ms']:.1f} ms/step" if result["status"] == "ok" else result["error"])
  )
  return result


def run_bench(out, cells, overrides, steps, warmup, budget_s, dtype, log=print):
  """The cells, each round followed by the reference beside each model; returns (cells, references)."""
  rounds = max(1, _ROUNDS.value)
  models = list(dict.fromkeys(c["model"] for c in cells))
  refs = plan_references(models, overrides) if _REFERENCE.value else {}
  cell_rounds, ref_rounds = [], {m: [] for m in refs}
  start = time.perf_counter()
  planned = [dict(c) for c in cells]
  for r in range(rounds):
    tag = f".round{r + 1}" if rounds > 1 else ""
    todo = [dict(c) for c in planned]
    for cell, first in zip(todo, cell_rounds[0] if cell_rounds else ()):
      if first.get("status") == "skipped":  # not run in the first round: not in the later ones either
        cell.update(status="skipped", reason=first["reason"])
    left = budget_s - (time.perf_counter() - start)
    cell_rounds.append(run_cells(out, todo, overrides, steps, warmup, left, _CELL_TIMEOUT.value, tag, log))
    for model, ref in refs.items():
      if "args" in ref:
        ref_rounds[model].append(run_reference(out, model, ref, dtype, steps, warmup, tag, log))
  merged = bench.merge_rounds(cell_rounds)
  references = {m: bench.merge_rounds([[x] for x in ref_rounds[m]])[0] if ref_rounds[m] else refs[m] for m in refs}
  bench.add_reference_ratios(merged, references)
  return merged, references


# ---------------------------------------------------------------------------------------------
# Part 2: the training run (one worker process).
# ---------------------------------------------------------------------------------------------


def run_training(out, overrides, budget_s, eval_examples, eval_kinds, timeout_s, tiny, stop_after_s=None):
  """The training worker; training still running `stop_after_s` from now is stopped and evaluated as it is."""
  os.makedirs(os.path.join(out, "train"), exist_ok=True)
  spec = dict(
    config=_TRAIN_CONFIG.value,
    overrides=overrides,
    budget_s=budget_s,
    stop_at=None if stop_after_s is None else time.time() + stop_after_s,
    timing_steps=3 if tiny else 10,
    timing_warmup=1 if tiny else 2,
    eval_examples=eval_examples,
    eval_feature_kinds=eval_kinds,
    workdir=os.path.join(out, "train", "run"),
  )
  result = launch_worker("train", spec, os.path.join(out, "train", "worker"), timeout_s)
  result.setdefault("status", "ok")
  return result


# ---------------------------------------------------------------------------------------------
# Main.
# ---------------------------------------------------------------------------------------------


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if _WORKER.value:
    return run_worker(_WORKER.value, _SPEC.value)
  if _PACK.value:
    if not _PACK_FROM.value:
      raise app.UsageError("--pack needs --pack_from=DIR (or $HJEPA_CIFAR10_DIR): a cifar-10-batches-py folder")
    try:
      part = bench.parse_part(_PACK_PART.value)
    except ValueError as e:
      raise app.UsageError(f"--pack_part: {e}") from e
    sizes = bench.pack_cifar10(_PACK.value, _PACK_FROM.value, _PACK_TRAIN.value, _PACK_TEST.value, part=part)
    print(f"wrote {_PACK.value}: {sizes} images, {os.path.getsize(_PACK.value) / 2**20:.1f} MiB")
    return None
  if not _OUT.value:
    raise app.UsageError("--out is required")
  out = os.path.abspath(_OUT.value)
  os.makedirs(out, exist_ok=True)
  started, t0 = _now(), time.perf_counter()
  tiny = _TINY.value
  train_budget = _option("train_budget_s", _TRAIN_BUDGET)
  overhead = _option("train_overhead_s", _TRAIN_OVERHEAD)
  bench_budget = _BENCH_BUDGET.value
  if bench_budget is None:
    bench_budget = max(0.0, _BUDGET.value - (0 if _SKIP_TRAIN.value else train_budget + overhead))
  report = {
    "command": [os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]],
    "started": started,
    "host": {"machine": py_platform.machine(), "cpus": os.cpu_count(), "python": py_platform.python_version()},
  }

  def save():
    report["wall_s"] = time.perf_counter() - t0
    jsonfile.write(os.path.join(out, "benchmark.json"), report, default=str)
    with open(os.path.join(out, "benchmark.md"), "w") as f:
      f.write(bench.format_report(report))

  if not _SKIP_BENCH.value:
    steps, warmup = _option("steps", _STEPS), _option("warmup", _WARMUP)
    dtypes = _option("dtypes", _DTYPES)
    cells = bench.plan_cells(
      _option("models", _MODELS),
      dtypes,
      _option("attention", _ATTENTION),
      _option("remat", _REMAT),
      _LAYOUTS.value,
      _ONE_AT_A_TIME.value,
    )
    print(f"micro-benchmarks: {len(cells)} cells x {_ROUNDS.value} round(s), budget {bench_budget:.0f} s")
    report["bench"] = dict(
      budget_s=bench_budget,
      steps=steps,
      warmup=warmup,
      rounds=_ROUNDS.value,
      overrides=bench.parse_overrides(_SET.value),
    )
    overrides = report["bench"]["overrides"]
    cells, report["bench"]["reference"] = run_bench(out, cells, overrides, steps, warmup, bench_budget, dtypes[0])
    report["bench"]["model_flops"] = bench.add_mfu(cells)
    report["bench"]["cells"] = cells
    report["device"] = next((c["device"] for c in cells if "device" in c), None)
    save()

  if not _SKIP_TRAIN.value:
    overrides = bench.parse_overrides(_TRAIN_SET.value or (bench.TINY_TRAIN_SET if tiny else bench.TRAIN_SET))
    overrides["data.pipeline"] = _PIPELINE.value
    if _DATA_PACK.value:
      dest = os.path.join(out, "data", "cifar-10-batches-py")
      report["data_pack"] = {
        "files": _DATA_PACK.value,
        "dir": dest,
        "images": bench.unpack_cifar10(_DATA_PACK.value, dest),
      }
      overrides["data.cifar10_dir"] = dest
    left = _BUDGET.value - (time.perf_counter() - t0)
    budget = max(1.0, min(train_budget, left - overhead))
    print(f"training: {budget:.0f} s of steps ({left:.0f} s of the plan left)")
    report["train"] = run_training(
      out,
      overrides,
      budget,
      _option("eval_examples", _EVAL_EXAMPLES),
      _option("eval_feature_kinds", _EVAL_KINDS),
      timeout_s=max(60.0, left + 15.0),
      tiny=tiny,
      stop_after_s=max(10.0, left - _option("eval_reserve_s", _EVAL_RESERVE)),
    )
    report["device"] = report.get("device") or report["train"].get("device")
  report["finished"] = _now()
  save()
  with open(os.path.join(out, "benchmark.md")) as f:
    print(f.read(), end="")
  print(f"saved {os.path.join(out, 'benchmark.json')}")
  return None


if __name__ == "__main__":
  from hjepa_jax.platform import tune_host

  tune_host()  # XLA:CPU flags and huge-page malloc (restarts once) where they help
  app.run(main)
