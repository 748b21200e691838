"""Reading a run while it trains: training.log parsing, health alerts, the training process.

Everything here is plain Python + numpy (no TensorFlow, no device work) so `launch/monitor.py`
starts quickly next to a busy training process, and the rules are unit-testable on a synthetic
log. Alert thresholds follow the seeds' critical-metrics table:

| signal | warning | critical |
|---|---|---|
| feature std (`feat_std`, collapse) | < 0.1 | < 0.05 |
| gradient norm | > 5 | > 50 |
| loss | recent window mean > earlier window mean (+5%) | NaN/Inf |
| time per epoch | > budget | |
"""

import dataclasses
import datetime
import math
import os
import re

import numpy as np

FEATURE_STD_WARN, FEATURE_STD_CRIT = 0.1, 0.05
GRAD_NORM_WARN, GRAD_NORM_CRIT = 5.0, 50.0
LOSS_RISE_TOLERANCE = 0.05
STALL_MIN_SECONDS = 600.0

_TIME_FORMAT = "%Y-%m-%d %H:%M:%S,%f"
_TIME_RE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (\w+) (.*)$")
_STEP_RE = re.compile(r"^step (\d+)/(\d+) \|")
_EVAL_RE = re.compile(r"^eval at step (\d+): (.*)$")
_PLAN_RE = re.compile(r"^(\d+) steps: (\d+) per epoch")
_FINISHED_RE = re.compile(r"^training finished at step (\d+)")
_SESSION_RE = re.compile(r"^(initialised a new run|resumed from)")


@dataclasses.dataclass
class StepRecord:
  """One progress line of training.log (the mean of the steps since the previous one)."""

  step: int
  total_steps: int
  time: datetime.datetime = None
  epoch: float = math.nan
  total_epochs: float = math.nan
  loss: float = math.nan
  lr: float = math.nan
  grad_norm: float = math.nan
  feat_std: float = math.nan
  images_per_sec: float = math.nan
  steps_per_sec: float = math.nan
  eta: str = ""


@dataclasses.dataclass
class RunLog:
  """What training.log says about a run; `state` covers the latest session (after a resume)."""

  records: list = dataclasses.field(default_factory=list)
  evals: list = dataclasses.field(default_factory=list)  # [(step, {name: value})]
  steps_per_epoch: int = None
  total_steps: int = None
  finished_step: int = None
  stopped: str = None
  errors: list = dataclasses.field(default_factory=list)
  last_time: datetime.datetime = None

  @property
  def state(self):
    if self.errors:
      return "failed"
    if self.finished_step is not None:
      return "finished"
    if self.stopped:
      return "stopped"
    return "running" if self.records or self.last_time else "starting"

  @property
  def last(self):
    return self.records[-1] if self.records else None

  @property
  def last_eval(self):
    return self.evals[-1] if self.evals else None

  def epoch_minutes(self):
    """Minutes per epoch at the latest measured speed, or None."""
    r = self.last
    if r is None or not r.steps_per_sec > 0:
      return None
    per_epoch = self.steps_per_epoch or (r.step / r.epoch if r.epoch > 0 else None)
    return per_epoch / r.steps_per_sec / 60 if per_epoch else None


def _float(text):
  try:
    return float(text)
  except ValueError:
    return math.nan


def _parse_step(message):
  """A progress line: fields separated by ' | ' as `name value` or `value unit`; unknown ones ignored."""
  m = _STEP_RE.match(message)
  if not m:
    return None
  rec = StepRecord(step=int(m.group(1)), total_steps=int(m.group(2)))
  for field in message.split(" | ")[1:]:
    parts = field.split()
    if len(parts) != 2:
      continue
    a, b = parts
    if a == "epoch" and "/" in b:
      rec.epoch, rec.total_epochs = (_float(x) for x in b.split("/", 1))
    elif a in ("loss", "lr", "grad_norm", "feat_std"):
      setattr(rec, a, _float(b))
    elif a == "ETA":
      rec.eta = b
    elif b == "img/s":
      rec.images_per_sec = _float(a)
    elif b == "steps/s":
      rec.steps_per_sec = _float(a)
  return rec


def log_entries(text):
  """(time or None, level, message) of each line of training.log's format; other lines are skipped."""
  for line in text.splitlines():
    m = _TIME_RE.match(line)
    if not m:
      continue
    try:
      when = datetime.datetime.strptime(m.group(1), _TIME_FORMAT)
    except ValueError:
      when = None
    yield when, m.group(2), m.group(3)


def parse_log(text):
  """RunLog from the text of logs/training.log (tolerates a half-written last line)."""
  log = RunLog()
  for when, level, message in log_entries(text):
    log.last_time = when or log.last_time
    if _SESSION_RE.match(message):  # a new session (resume): earlier end states no longer apply
      log.finished_step, log.stopped, log.errors = None, None, []
      continue
    rec = _parse_step(message)
    if rec is not None:
      rec.time = when
      log.records.append(rec)
      log.total_steps = rec.total_steps
      continue
    if e := _EVAL_RE.match(message):
      metrics = {}
      for item in e.group(2).split(", "):
        name, _, value = item.rpartition(" ")
        if name:
          metrics[name] = _float(value)
      log.evals.append((int(e.group(1)), metrics))
    elif p := _PLAN_RE.match(message):
      log.total_steps, log.steps_per_epoch = int(p.group(1)), int(p.group(2))
    elif f := _FINISHED_RE.match(message):
      log.finished_step = int(f.group(1))
    elif message.startswith("stopped by "):
      log.stopped = message
    elif level in ("ERROR", "CRITICAL"):
      log.errors.append(message)
  return log


def read_log(run):
  """RunLog of a run directory (or of a training.log path)."""
  path = run if os.path.isfile(run) else os.path.join(run, "logs", "training.log")
  with open(path, errors="replace") as f:
    return parse_log(f.read())


@dataclasses.dataclass(frozen=True)
class Alert:
  level: str  # "CRITICAL" | "WARNING"
  message: str

  def __str__(self):
    return f"{self.level}: {self.message}"


def check(log, epoch_budget_min=None, now=None):
  """Alerts for the latest state of a run, most severe first; `now` (datetime) enables the stall check."""
  alerts = []
  for err in log.errors[-3:]:
    alerts.append(Alert("CRITICAL", f"run failed: {err[:300]}"))
  r = log.last
  if r is not None:
    if not math.isfinite(r.loss):
      alerts.append(
        Alert(
          "CRITICAL",
          f"loss is {r.loss} at step {r.step}: the run diverged; lower optim.lr, longer warmup or optim.clip_norm=1.0",
        )
      )
    if r.feat_std < FEATURE_STD_CRIT:
      alerts.append(Alert("CRITICAL", f"feature std {r.feat_std:.3f} < {FEATURE_STD_CRIT}: representation collapse"))
    elif r.feat_std < FEATURE_STD_WARN:
      alerts.append(Alert("WARNING", f"feature std {r.feat_std:.3f} < {FEATURE_STD_WARN}: features are collapsing"))
    if r.grad_norm > GRAD_NORM_CRIT:
      alerts.append(
        Alert(
          "CRITICAL",
          f"grad norm {r.grad_norm:.3g} > {GRAD_NORM_CRIT:g}: unstable; lower optim.lr or optim.clip_norm=1.0",
        )
      )
    elif r.grad_norm > GRAD_NORM_WARN:
      alerts.append(Alert("WARNING", f"grad norm {r.grad_norm:.3g} > {GRAD_NORM_WARN:g}"))
  rising = loss_trend(log.records)
  if rising is not None:
    earlier, recent, w = rising
    alerts.append(
      Alert("WARNING", f"loss rising: mean {recent:.4f} over the last {w} logs vs {earlier:.4f} over the {w} before")
    )
  minutes = log.epoch_minutes()
  if epoch_budget_min and minutes is not None and minutes > epoch_budget_min and log.state == "running":
    alerts.append(
      Alert(
        "WARNING",
        f"{minutes:.1f} min/epoch is over the {epoch_budget_min:g} min budget; "
        "consider fewer epochs or a smaller model/batch",
      )
    )
  if log.last_eval and log.last_eval[1].get("eval/collapsed", 0) >= 1:
    alerts.append(Alert("CRITICAL", f"evaluation at step {log.last_eval[0]} flagged collapsed features"))
  stale = _stale_seconds(log, now)
  if stale is not None:
    alerts.append(Alert("WARNING", f"no log line for {stale / 60:.0f} min: is the process still alive?"))
  return sorted(alerts, key=lambda a: a.level != "CRITICAL")


def loss_trend(records, window=5):
  """(earlier mean, recent mean, window) when the loss rose between two adjacent windows, else None."""
  losses = [r.loss for r in records if math.isfinite(r.loss)]
  w = min(window, len(losses) // 2)
  if w < 2:
    return None
  earlier, recent = float(np.mean(losses[-2 * w : -w])), float(np.mean(losses[-w:]))
  return (earlier, recent, w) if recent > earlier * (1 + LOSS_RISE_TOLERANCE) else None


def _stale_seconds(log, now):
  if now is None or log.state != "running" or log.last_time is None:
    return None
  age = (now - log.last_time).total_seconds()
  interval = 0.0
  if len(log.records) >= 2 and log.last.steps_per_sec > 0:
    interval = (log.records[-1].step - log.records[-2].step) / log.last.steps_per_sec
  return age if age > max(STALL_MIN_SECONDS, 10 * interval) else None


def _workdir_arg(args):
  """The --workdir value of a command line (the last one, as absl takes it), or None."""
  value = None
  for i, a in enumerate(args):
    if a.startswith("--workdir="):
      value = a.split("=", 1)[1]
    elif a == "--workdir" and i + 1 < len(args):
      value = args[i + 1]
  return value


def _is_run_of(args, cwd, target):
  """Whether a command line is `main.py ... --workdir=W` with W (relative to cwd) resolving to target."""
  value = _workdir_arg(args) if any(os.path.basename(a) == "main.py" for a in args) else None
  return bool(value) and os.path.realpath(os.path.join(cwd, value)) == target


def find_training_process(workdir):
  """pid of a `launch/main.py --workdir=WORKDIR` process on this machine, or None."""
  target = os.path.realpath(workdir)
  if not os.path.isdir("/proc"):
    return _find_with_psutil(target)
  for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
    try:
      with open(f"/proc/{pid}/cmdline", "rb") as f:
        args = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
      if _is_run_of(args, os.readlink(f"/proc/{pid}/cwd"), target):
        return pid
    except OSError:
      continue
  return None


def _find_with_psutil(target):
  """Fallback where /proc is absent (macOS): psutil if installed."""
  try:
    import psutil  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  for proc in psutil.process_iter(["pid", "cmdline", "cwd"]):
    if _is_run_of(proc.info.get("cmdline") or [], proc.info.get("cwd") or "", target):
      return proc.info["pid"]
  return None


def process_memory_gib(pid):
  """Resident memory of `pid` in GiB, or None when it cannot be read."""
  if pid is None:
    return None
  try:
    with open(f"/proc/{pid}/status") as f:
      for line in f:
        if line.startswith("VmRSS:"):
          return int(line.split()[1]) / 2**20
  except OSError:
    pass
  try:
    import psutil  # pylint: disable=g-import-not-at-top

    return psutil.Process(pid).memory_info().rss / 2**30
  except Exception:  # pylint: disable=broad-except
    return None


def _eval_summary(metrics):
  knn = sorted((k for k in metrics if k.startswith("eval/knn_top1_k")), key=lambda k: int(k.rsplit("k", 1)[1]))
  keys = knn[-1:] + [k for k in ("eval/effective_rank",) if k in metrics]
  keys = keys or list(metrics)[:2]
  return ", ".join(f"{k.split('/', 1)[-1]} {metrics[k]:.4g}" for k in keys)


def status_line(log, name="", memory_gib=None, now=None):
  """One line: state, step, epoch, loss, throughput, min/epoch, ETA, memory, last eval, log age."""
  parts = [f"{name}: {log.state}" if name else log.state]
  r = log.last
  if log.state == "finished":
    parts[0] += f" at step {log.finished_step}"
  if r is None:
    parts.append("no progress line yet")
  else:
    pct = f" ({100 * r.step / r.total_steps:.0f}%)" if r.total_steps else ""
    parts += [
      f"step {r.step}/{r.total_steps}{pct}",
      f"epoch {r.epoch:.2f}/{r.total_epochs:g}",
      f"loss {r.loss:.4f}",
      f"feat_std {r.feat_std:.3f}",
      f"grad_norm {r.grad_norm:.3g}",
      f"{r.images_per_sec:.1f} img/s",
      f"{r.steps_per_sec:.2f} steps/s",
    ]
    minutes = log.epoch_minutes()
    if minutes is not None:
      parts.append(f"{minutes:.1f} min/epoch")
    if log.state == "running":
      parts.append(f"ETA {r.eta or 'n/a'}")
  parts.append(f"mem {memory_gib:.2f} GiB" if memory_gib is not None else "mem n/a")
  ev = log.last_eval
  parts.append(f"eval@{ev[0]} {_eval_summary(ev[1])}" if ev else "eval n/a")
  if now is not None and log.last_time is not None:
    parts.append(f"updated {_ago((now - log.last_time).total_seconds())} ago")
  return " | ".join(parts)


def _ago(seconds):
  seconds = max(seconds, 0)
  if seconds < 120:
    return f"{seconds:.0f}s"
  return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"
