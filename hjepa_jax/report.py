"""WORKDIR/report.md: a finished (or stopped) run in the seed guide's report shape, from what the run recorded.

Sources, all written by the run or by launch/evaluate.py (nothing new is stored): config.json, summary.json (the
last logged train/ and eval/ metrics, skipped steps), logs/training.log (backend, compile time, wall time of every
session, throughput; parsed with tools/monitor.py) and, when present, evaluation/results*.json (offline k-NN,
linear probe, collapse diagnostics). The seed guide's success criteria of the recipe named by `report.criteria`
are each ticked ✅ / ❌ with the number behind it, or marked "not measured" with the reason; the lessons and next
steps are left as headings for the user. train.py writes it at the end of training; launch/report.py rewrites it
(e.g. after an offline evaluation). Plain Python: no JAX, no TensorFlow.
"""

import dataclasses
import datetime
import os
import re
import statistics

from hjepa_jax import jsonfile
from hjepa_jax.evaluation.results import results_path
from hjepa_jax.tools import monitor

CRITERIA = ("none", "conservative", "aggressive")
REPORT = "report.md"
PASS, FAIL, UNKNOWN = "✅", "❌", "not measured"

_BACKEND_RE = re.compile(r"backend (\S+) \((.*)\) x (\d+) devices, (\d+) process")
_COMPILE_RE = re.compile(r"train_step compiled and ran step \d+ in ([\d.]+) s")
_SESSION_START = "workdir "  # the first line every session of train.py logs


# ---------------------------------------------------------------------------------------------
# What the run recorded.
# ---------------------------------------------------------------------------------------------


def log_facts(text):
  """Backend, compile seconds of each session, wall seconds of all sessions, first and last time of the log."""
  facts = {"backend": None, "compile_s": [], "wall_s": 0.0, "first": None, "last": None}
  start = end = None
  for when, _, message in monitor.log_entries(text):
    if when is None:
      continue
    if message.startswith(_SESSION_START):
      if start is not None:
        facts["wall_s"] += (end - start).total_seconds()
      start = when
    end = when
    facts["first"] = facts["first"] or when
    facts["last"] = when
    if b := _BACKEND_RE.search(message):
      facts["backend"] = f"{b.group(1)} ({b.group(2)}) x {b.group(3)} device(s), {b.group(4)} process(es)"
    if c := _COMPILE_RE.search(message):
      facts["compile_s"].append(float(c.group(1)))
  if start is not None:
    facts["wall_s"] += (end - start).total_seconds()
  return facts


@dataclasses.dataclass
class Run:
  """Everything report.md says, read from a workdir."""

  workdir: str
  config: dict
  summary: dict
  log: monitor.RunLog
  log_facts: dict
  offline: dict  # {"target" | "online" | "init": results dict of launch/evaluate.py}

  @property
  def metrics(self):
    return self.summary.get("metrics", {})

  def offline_metric(self, name, encoder="target"):
    """A metric of the offline evaluation on average-pooled features, or None."""
    results = self.offline.get(encoder)
    return None if results is None else results.get("metrics", {}).get("avgpool", {}).get(name)

  def knn20(self):
    """(k-NN@20 top-1, where it comes from): the offline evaluation if any, else the last in-training one."""
    if (v := self.offline_metric("knn_top1_k20")) is not None:
      return v, "offline evaluation"
    if (v := self.metrics.get("eval/knn_top1_k20")) is not None:
      return v, "in-training evaluation (a subset)"
    return None, ""

  def final_loss(self):
    """(value, name): the JEPA loss when view-level losses add to train/loss (the guide's loss is the JEPA one)."""
    for name in ("train/jepa_loss", "train/loss"):
      if self.metrics.get(name) is not None:
        return self.metrics[name], name
    return None, ""

  @property
  def hours(self):
    return self.log_facts["wall_s"] / 3600 if self.log_facts["wall_s"] else None

  @property
  def clean(self):
    """No NaN/Inf update and no error: the run ended at its last step or was stopped on request."""
    return not self.summary.get("skipped_steps") and not self.log.errors and bool(self.summary)


def read_run(workdir):
  log_path = os.path.join(workdir, "logs", "training.log")
  text = open(log_path, errors="replace").read() if os.path.isfile(log_path) else ""
  offline = {}
  for encoder, path in (
    ("target", results_path(workdir)),
    ("online", results_path(workdir, encoder="online")),
    ("init", results_path(workdir, random_init=True)),
  ):
    if (results := jsonfile.read(path)) is not None:
      offline[encoder] = results
  return Run(
    workdir=os.path.abspath(workdir),
    config=jsonfile.read(os.path.join(workdir, "config.json")) or {},
    summary=jsonfile.read(os.path.join(workdir, "summary.json")) or {},
    log=monitor.parse_log(text),
    log_facts=log_facts(text),
    offline=offline,
  )


# ---------------------------------------------------------------------------------------------
# The seed guide's success criteria.
# ---------------------------------------------------------------------------------------------


def _pct(x):
  return f"{100 * x:.1f}%"


def _compare(value, op, limit, shown):
  """(status, evidence) of `value op limit`; value None is not measured."""
  if value is None:
    return UNKNOWN, ""
  ok = value < limit if op == "<" else value > limit
  return (PASS if ok else FAIL), shown(value)


def _hours(op, limit):
  return lambda run: _compare(run.hours, op, limit, lambda h: f"{h:.2f} h of wall time")


def _loss(limit):
  def check(run):
    value, name = run.final_loss()
    return _compare(value, "<", limit, lambda v: f"{name} {v:.4f}")

  return check


def _probe(limit):
  def check(run):
    value = run.offline_metric("linear_probe_top1")
    if value is None:
      return UNKNOWN, "no offline evaluation: run launch/evaluate.py --eval_types=linear_probe, then launch/report.py"
    return _compare(value, ">", limit, _pct)

  return check


def _knn(limit):
  def check(run):
    value, where = run.knn20()
    if value is None:
      return UNKNOWN, "no k-NN@20 in this run (eval.knn_ks) and no offline evaluation"
    return _compare(value, ">", limit, lambda v: f"{_pct(v)} ({where})")

  return check


def _feature_variance(limit):
  return lambda run: _compare(
    run.metrics.get("train/feature_variance"), ">", limit, lambda v: f"train/feature_variance {v:.3f}"
  )


def _no_nonfinite(run):
  skipped = run.summary.get("skipped_steps")
  if skipped is None:
    return UNKNOWN, "no summary.json"
  return (PASS, "no update skipped") if not skipped else (FAIL, f"{len(skipped)} skipped: steps {skipped[:5]}")


def _ran_with(keys):
  """✅ when the run ended cleanly with every (dotted) config key in `keys` on, naming them."""

  def check(run):
    def get(key):
      node = run.config
      for part in key.split("."):
        node = node.get(part, {}) if isinstance(node, dict) else {}
      return node

    on = [k for k in keys if get(k) not in ({}, None, False, 0, 0.0, "none", "")]
    if len(on) < len(keys):
      return FAIL, f"off in this run: {', '.join(sorted(set(keys) - set(on)))}"
    return (PASS if run.clean else FAIL), f"{', '.join(on)} on; run {'clean' if run.clean else 'not clean'}"

  return check


def _memory(limit_gb):
  return lambda run: _compare(
    run.metrics.get("train/peak_memory_mb") and run.metrics["train/peak_memory_mb"] / 1024,
    "<",
    limit_gb,
    lambda g: f"{g:.1f} GB peak",
  )


def _contrastive_acc(limit):
  return lambda run: _compare(run.metrics.get("train/contrastive_acc"), ">", limit, lambda v: f"{v:.3f}")


def _not_measured(why):
  return lambda run: (UNKNOWN, why)


_ANOTHER_RUN = "needs the conservative run's number beside this one"
_LOOK = "a judgement by eye (launch/visualize.py figures, TensorBoard)"
_FLASH = "no baseline without fused attention was timed (launch/ablate.py times one)"
_PHASES = ("model.fused_attention", "model.fpn.enabled", "loss.contrastive.weight")

# (tier, the guide's words, check) in the guide's order.
SEED_CRITERIA = {
  "conservative": [
    ("Minimum", "Training completes in <8.5 hours", _hours("<", 8.5)),
    ("Minimum", "No NaN/Inf losses at any point", _no_nonfinite),
    ("Minimum", "Flash Attention runs without errors", _ran_with(("model.fused_attention",))),
    ("Minimum", "Final loss <1.0", _loss(1.0)),
    ("Minimum", "Linear probe accuracy >55%", _probe(0.55)),
    ("Minimum", "Feature variance >0.05 (no collapse)", _feature_variance(0.05)),
    ("Target", "Training completes in <8 hours", _hours("<", 8.0)),
    ("Target", "Flash Attention shows 2x+ speedup vs baseline", _not_measured(_FLASH)),
    ("Target", "Smooth loss curves (no oscillation)", _not_measured(_LOOK)),
    ("Target", "Final loss <0.5", _loss(0.5)),
    ("Target", "Linear probe accuracy >60%", _probe(0.60)),
    ("Target", "k-NN accuracy >50%", _knn(0.50)),
    ("Target", "Feature variance >0.1", _feature_variance(0.1)),
    ("Stretch", "Training completes in <7.5 hours", _hours("<", 7.5)),
    ("Stretch", "Flash Attention shows 3x+ speedup", _not_measured(_FLASH)),
    ("Stretch", "Final loss <0.3", _loss(0.3)),
    ("Stretch", "Linear probe accuracy >65%", _probe(0.65)),
    ("Stretch", "k-NN accuracy >60%", _knn(0.60)),
    ("Stretch", "Clear hierarchy differentiation visible", _not_measured(_LOOK)),
  ],
  "aggressive": [
    ("Minimum", "Training completes in <9 hours", _hours("<", 9.0)),
    ("Minimum", "No catastrophic failures", _no_nonfinite),
    ("Minimum", "Linear probe accuracy >60% (better than CIFAR baseline)", _probe(0.60)),
    ("Minimum", "All Phase 1-3 features run without errors", _ran_with(_PHASES)),
    ("Minimum", "Memory stays <28 GB", _memory(28.0)),
    ("Target", "Training completes in <8.5 hours", _hours("<", 8.5)),
    ("Target", "Linear probe accuracy >68%", _probe(0.68)),
    ("Target", "Improvement over conservative >5%", _not_measured(_ANOTHER_RUN)),
    ("Target", "FPN features look good in visualizations", _not_measured(_LOOK)),
    ("Target", "Contrastive accuracy >0.9", _contrastive_acc(0.9)),
    ("Target", "Final loss <0.3", _loss(0.3)),
    ("Target", "k-NN accuracy >60%", _knn(0.60)),
    ("Stretch", "Training completes in <8 hours", _hours("<", 8.0)),
    ("Stretch", "Linear probe accuracy >73%", _probe(0.73)),
    ("Stretch", "Improvement over conservative >10%", _not_measured(_ANOTHER_RUN)),
    ("Stretch", "Match or exceed I-JEPA baseline (75%)", _probe(0.75)),
    ("Stretch", "Strong transfer to downstream tasks", _not_measured("no transfer evaluation in this project")),
    ("Stretch", "Clear multi-scale hierarchy visible", _not_measured(_LOOK)),
  ],
}


def judge(run, criteria):
  """[(tier, criterion, status, evidence)] of the seed guide's criteria set `criteria` ("none": [])."""
  if criteria not in CRITERIA:
    raise ValueError(f"report criteria {criteria!r} is not one of {CRITERIA}")
  return [(tier, text, *check(run)) for tier, text, check in SEED_CRITERIA.get(criteria, [])]


def success(judged):
  """'Yes' when every Minimum criterion passes, 'No' when one fails, else 'undetermined'."""
  minimum = [status for tier, _, status, _ in judged if tier == "Minimum"]
  if FAIL in minimum:
    return "No"
  return "Yes" if minimum and all(s == PASS for s in minimum) else "undetermined"


# ---------------------------------------------------------------------------------------------
# The report.
# ---------------------------------------------------------------------------------------------


def _num(value, fmt="{:.4f}"):
  return "-" if value is None else fmt.format(value)


def _setup_line(cfg):
  model, data, optim = cfg.get("model", {}), cfg.get("data", {}), cfg.get("optim", {})
  arch = model.get("variant") or (
    f"width {model.get('width')}, depth {model.get('depth')}, heads {model.get('num_heads')}, "
    f"patch {model.get('patch_size')}"
  )
  length = f"{cfg['total_steps']} steps" if cfg.get("total_steps") else f"{cfg.get('total_epochs')} epochs"
  return (
    f"ViT {arch} at {data.get('image_size')} px on {', '.join(data.get('datasets', []))}; batch "
    f"{data.get('batch_size')} x {optim.get('grad_accum_steps', 1)} accumulation; lr {optim.get('lr')}; {length}"
  )


def render(run, criteria):
  """The markdown text of report.md."""
  cfg, m, log = run.config, run.metrics, run.log
  judged = judge(run, criteria)
  step, steps_per_epoch = run.summary.get("step"), log.steps_per_epoch
  epochs = step / steps_per_epoch if step is not None and steps_per_epoch else None
  rates = [r.steps_per_sec for r in log.records if r.steps_per_sec == r.steps_per_sec]  # not NaN
  epoch_min = steps_per_epoch / statistics.median(rates) / 60 if rates and steps_per_epoch else None
  loss, loss_name = run.final_loss()
  probe = run.offline_metric("linear_probe_top1")
  knn, knn_where = run.knn20()
  performance = (
    f"{_pct(probe)} linear probe (offline evaluation)"
    if probe is not None
    else (f"{_pct(knn)} k-NN@20 ({knn_where}); no linear probe yet" if knn is not None else "not evaluated")
  )
  when = log.last_time or datetime.datetime.now()
  ended = (
    "finished"
    if run.summary.get("finished")
    else (f"stopped at step {step} of {log.total_steps}" if step is not None else "no summary.json: not ended")
  )
  compile_s = run.log_facts["compile_s"]
  out = [
    "# Training Results",
    "",
    f"**Date:** {when:%Y-%m-%d}",
    f"**Configuration:** {criteria if criteria != 'none' else 'custom'} (report.criteria={criteria}): "
    + _setup_line(cfg),
    f"**Hardware:** {run.log_facts['backend'] or 'unknown (no backend line in logs/training.log)'}",
    f"**Workdir:** `{run.workdir}`",
    "",
    "## Summary",
    "",
    f"- Final Performance: {performance}",
    f"- Training Time: {_num(run.hours, '{:.2f}')} hours (wall time of every session, compile and evaluation included)",
    f"- Success: {success(judged) if judged else 'not judged (report.criteria=none)'}"
    + (" (vs the seed guide's Minimum criteria)" if judged else ""),
    "",
    "## Training Details",
    "",
    f"- Run: {ended}",
    f"- Epochs completed: {_num(epochs, '{:.2f}')} ({step} steps of {steps_per_epoch} per epoch)",
    f"- Final loss: {_num(loss)} ({loss_name or '-'}); per level: "
    + ", ".join(f"{k.split('/')[-1]} {v:.4f}" for k, v in sorted(m.items()) if k.startswith("train/loss_level_")),
    f"- Time per epoch: {_num(epoch_min, '{:.3g}')} minutes (median throughput of the logged windows)",
    f"- Compile time: {', '.join(f'{s:.1f} s' for s in compile_s) or '-'} (first step of each session)",
    f"- Peak memory: {_num(m.get('train/peak_memory_mb'), '{:.0f}')} MiB",
    f"- Skipped steps (NaN/Inf): {len(run.summary.get('skipped_steps') or [])}",
    "",
    "## Final Metrics",
    "",
    "| metric | value | source |",
    "|---|---:|---|",
  ]
  rows = [
    ("k-NN@20 top-1, target", m.get("eval/knn_top1_k20"), "in-training", _pct),
    ("k-NN@20 top-1, online", m.get("eval/online/knn_top1_k20"), "in-training", _pct),
    ("k-NN@20 top-1, random init", m.get("eval/init/knn_top1_k20"), "in-training", _pct),
    ("feature std (collapse < 0.05)", m.get("eval/feature_std"), "in-training", "{:.4f}".format),
    ("effective rank", m.get("eval/effective_rank"), "in-training", "{:.1f}".format),
    ("train/feature_variance", m.get("train/feature_variance"), "last log", "{:.4f}".format),
  ]
  for encoder, label in (("target", "target"), ("online", "online"), ("init", "random init")):
    for name, shown in (("knn_top1_k20", _pct), ("linear_probe_top1", _pct), ("feature_std", "{:.4f}".format)):
      rows.append((f"{name}, {label}", run.offline_metric(name, encoder), "offline (avgpool)", shown))
  out += [f"| {name} | {shown(v)} | {src} |" for name, v, src, shown in rows if v is not None]
  if not run.offline:
    out += ["", "No offline evaluation yet: `python launch/evaluate.py --workdir=WORKDIR`, then"]
    out += ["`python launch/report.py --workdir=WORKDIR` adds its k-NN, linear probe and diagnostics here."]
  out += ["", "## Success Criteria", ""]
  if judged:
    out += [
      f"The seed guide's {criteria} criteria.",
      "",
      "| tier | criterion | status | measured |",
      "|---|---|---|---|",
    ]
    out += [f"| {tier} | {text} | {status} | {evidence} |" for tier, text, status, evidence in judged]
  else:
    out += ["Not judged: set `report.criteria` to conservative or aggressive (or `launch/report.py --criteria=`)."]
  out += ["", "## Lessons Learned", "", "## Next Steps", ""]
  out += ["## Appendix", "", "- Checkpoints: `checkpoints/` (best: `best/`)", "- Logs: `logs/training.log`"]
  out += ["- TensorBoard: `tensorboard --logdir WORKDIR`", ""]
  return "\n".join(out)


def write_report(workdir, criteria=None):
  """Writes WORKDIR/report.md (write-then-rename) and returns its path; criteria None: the run's report.criteria."""
  run = read_run(workdir)
  if criteria is None:
    criteria = run.config.get("report", {}).get("criteria", "none")
  path = os.path.join(workdir, REPORT)
  jsonfile.write_text(path, render(run, criteria))
  return path
