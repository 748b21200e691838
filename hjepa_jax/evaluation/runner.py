"""Offline evaluation of a training run: restore, embed a labelled dataset, score, write a report.

`evaluate_run(workdir)` rebuilds the model from the run's own config.json, embeds the labelled
splits with the target (EMA) encoder, the one I-JEPA evaluates, and runs k-NN, a linear probe,
few-shot and collapse diagnostics on frozen features. `encoder="online"` scores the online (context)
encoder of the same checkpoint (in a short run the target lags far behind it). `random_init=True`
scores the run's step-0 encoder instead (same architecture, same seed): the baseline every trained
number should beat. Results go to WORKDIR/evaluation/results.json and results.md
(results_online.* and results_random_init.* for the others, so all coexist and results.md shows
them side by side).
"""

import contextlib
import datetime
import json
import logging
import os
import time
from typing import Any, NamedTuple

import jax
import ml_collections
import numpy as np

from hjepa_jax import checkpoint as ckpt_lib
from hjepa_jax import config as config_lib
from hjepa_jax import data as data_lib
from hjepa_jax import jsonfile
from hjepa_jax.evaluation.diagnostics import collapse_report
from hjepa_jax.evaluation.features import FEATURE_KINDS, extract_features, make_feature_fn
from hjepa_jax.evaluation.fewshot import fewshot_episodes, ridge_fewshot
from hjepa_jax.evaluation.knn import knn_classify
from hjepa_jax.evaluation.linear_probe import linear_probe
from hjepa_jax.evaluation.results import BASELINE, RESULTS, results_path  # noqa: F401  (runner.*: launchers, tests)
from hjepa_jax import experiment

EVAL_TYPES = ("knn", "linear_probe", "fewshot", "features")
KNN_KS = (1, 5, 20, 200)
FEWSHOT_SHOTS = (1, 5)
FEWSHOT_WAYS, FEWSHOT_QUERIES = 5, 15
LAST_BLOCKS = 4
DEFAULT_FEATURE_KINDS = ("avgpool", "last4")
ENCODERS = ("target", "online")
_DIAGNOSTICS = ("feature_std", "effective_rank", "rank_ratio", "feature_entropy", "collapsed")


class EvaluationError(ValueError):
  """A request that cannot be evaluated as given; the message says what to do instead."""


# ---------------------------------------------------------------------------------------------
# The request: eval types, run config, dataset and splits.
# ---------------------------------------------------------------------------------------------


def resolve_eval_types(eval_types):
  """The requested evaluations in canonical order ("all" = every one); a string may be comma-separated."""
  if isinstance(eval_types, str):
    eval_types = eval_types.split(",")
  names = [t.strip() for t in eval_types if t.strip()]
  unknown = sorted(set(names) - set(EVAL_TYPES) - {"all"})
  if unknown or not names:
    raise EvaluationError(
      f"unknown eval type(s) {unknown or names}: use 'all' or a comma-separated subset of "
      f"{','.join(EVAL_TYPES)}, e.g. --eval_types=knn,linear_probe"
    )
  return EVAL_TYPES if "all" in names else tuple(t for t in EVAL_TYPES if t in names)


def load_run_config(workdir):
  """The run's own config (train.py writes WORKDIR/config.json) over today's defaults.

  Keys added to the schema after the run was started keep their defaults (the features they
  switch were off then), so older runs stay evaluable; lists come back as tuples.
  """
  path = os.path.join(workdir, "config.json")
  if not os.path.isfile(path):
    raise FileNotFoundError(
      f"{path} not found: --workdir must be a run directory of launch/main.py "
      "(it writes config.json when the run starts)"
    )
  with open(path) as f:
    saved = json.load(f)
  cfg = config_lib.base_config()
  _merge(cfg, saved)
  return cfg


def _merge(cfg, saved):
  for key, value in saved.items():
    if key not in cfg:
      continue  # a key this version no longer has
    if isinstance(cfg[key], ml_collections.ConfigDict):
      _merge(cfg[key], value)
    else:
      cfg[key] = tuple(value) if isinstance(value, list) else value


def eval_splits(name, data_cfg):
  """(train split, test split): the run's own eval splits for its eval dataset, else the standard ones."""
  if name not in data_lib.DATASET_NAMES:
    raise EvaluationError(
      f"unknown dataset {name!r}: use one of {', '.join(data_lib.DATASET_NAMES)} "
      f"(or leave --dataset unset for the run's data.eval_dataset, {data_cfg.eval_dataset!r})"
    )
  if name == data_cfg.eval_dataset:
    return data_cfg.eval_split_train, data_cfg.eval_split_test
  return "train", "val" if name == "imagenet100" else "test"


def _check_fewshot_possible(labels):
  """Fail before any feature extraction when the test split is too small for the episodes."""
  counts = np.bincount(labels)
  need = max(FEWSHOT_SHOTS) + FEWSHOT_QUERIES
  if int(np.sum(counts >= need)) < 2:
    raise EvaluationError(
      f"few-shot episodes need >= {need} test images in at least 2 classes, the largest class "
      f"has {counts.max()}: raise --max_examples or leave fewshot out of --eval_types"
    )


# ---------------------------------------------------------------------------------------------
# Encoder parameters and features.
# ---------------------------------------------------------------------------------------------


def check_encoder(encoder, random_init):
  if encoder not in ENCODERS:
    raise EvaluationError(f"unknown encoder {encoder!r}: use one of {', '.join(ENCODERS)}")
  if random_init and encoder != "target":
    raise EvaluationError(
      "--random_init evaluates the run's step-0 encoder (target and online are the same then); drop --encoder"
    )


def encoder_params(model, cfg, workdir, *, step, best, random_init, encoder="target"):
  """(step, encoder params, where they came from): the target or online encoder of a checkpoint, or step 0."""
  check_encoder(encoder, random_init)
  if random_init:
    if step is not None or best:
      raise EvaluationError("--random_init evaluates the run's step-0 encoder; drop --step and --best")
    init_rng, _ = experiment.init_rngs(cfg.seed)  # exactly train.py's initialisation
    return 0, model.init(init_rng)["encoder"], f"random init (seed {cfg.seed})"
  step, state = ckpt_lib.restore_for_eval(workdir, step, best)
  params = state["target"] if encoder == "target" else state["params"]["encoder"]
  return step, params, f"{'best' if best else 'checkpoints'}/{step} ({encoder} encoder)"


def feature_names(model, kinds):
  """{result name: make_feature_fn kind}; "last4" is named lastN on encoders with N < 4 blocks."""
  if isinstance(kinds, str):
    kinds = kinds.split(",")
  kinds = [k.strip() for k in kinds if k.strip()]
  unknown = sorted(set(kinds) - set(FEATURE_KINDS))
  if unknown or not kinds:
    raise EvaluationError(
      f"unknown feature kind(s) {unknown or kinds}: use a comma-separated subset of {','.join(FEATURE_KINDS)}"
    )
  last = f"last{min(LAST_BLOCKS, model.encoder.depth)}"
  return {(last if k == "last4" else k): k for k in FEATURE_KINDS if k in kinds}


def embed(model, params, splits, names, batch_size):
  """{feature name: {split role: float32 [N, D]}} for every split in `splits`."""
  fn = make_feature_fn(model, kinds=tuple(names.values()))
  out = {name: {} for name in names}
  for role, (images, _) in splits.items():
    feats = extract_features(fn, params, images, batch_size)
    for name, kind in names.items():
      out[name][role] = feats[kind]
  return out


# ---------------------------------------------------------------------------------------------
# The evaluations: fn(train_x, train_y, test_x, test_y, num_classes) -> (scalar metrics, details).
# ---------------------------------------------------------------------------------------------


def _knn(train_x, train_y, test_x, test_y, num_classes):
  return knn_classify(train_x, train_y, test_x, test_y, num_classes=num_classes, ks=KNN_KS), {}


def _linear_probe(train_x, train_y, test_x, test_y, num_classes):
  r = linear_probe(train_x, train_y, test_x, test_y, num_classes=num_classes)
  metrics = {
    "linear_probe_top1": r["top1"],
    "linear_probe_holdout_top1": r["holdout_top1"],
    "linear_probe_best_lr": r["best_lr"],
    "linear_probe_best_weight_decay": r["best_weight_decay"],
  }
  return metrics, {"linear_probe_sweep": r["sweep"]}


def _fewshot(train_x, train_y, test_x, test_y, num_classes):
  """Nearest-centroid episodes drawn from the test split, and ridge regression fitted on train shots."""
  metrics = {}
  for k in FEWSHOT_SHOTS:
    r = fewshot_episodes(test_x, test_y, n_way=FEWSHOT_WAYS, k_shot=k, n_query=FEWSHOT_QUERIES)
    key = f"fewshot_{r['n_way']}way_{k}shot"
    metrics[key], metrics[f"{key}_ci95"] = r["mean"], r["ci95"]
  metrics.update(ridge_fewshot(train_x, train_y, test_x, test_y, num_classes=num_classes, shots=FEWSHOT_SHOTS))
  return metrics, {}


def _diagnostics(train_x, train_y, test_x, test_y, num_classes):
  del train_x, train_y, test_y, num_classes  # collapse is a property of the test features alone
  report = collapse_report(test_x)
  return {k: report[k] for k in _DIAGNOSTICS}, {}


EVALUATIONS = {"knn": _knn, "linear_probe": _linear_probe, "fewshot": _fewshot, "features": _diagnostics}


@contextlib.contextmanager
def _timed(seconds, name):
  start = time.time()
  yield
  seconds[name] = round(seconds.get(name, 0.0) + time.time() - start, 3)


# ---------------------------------------------------------------------------------------------
# The whole evaluation.
# ---------------------------------------------------------------------------------------------


def evaluate_run(
  workdir,
  *,
  step=None,
  best=False,
  eval_types=("all",),
  dataset=None,
  data_dir=None,
  random_init=False,
  encoder="target",
  max_examples=None,
  batch_size=256,
  feature_kinds=DEFAULT_FEATURE_KINDS,
  write=True,
):
  """Evaluates one checkpoint of `workdir` (default: the newest) and returns the results dict.

  `dataset` defaults to the run's data.eval_dataset, read from `data_dir` if given (else the run's
  folder for it, `data_lib.DIR_KEYS`); `max_examples` (per split, a fixed random
  subset) to the run's data.eval_max_examples (unset: whole splits). Every evaluation runs on each
  of `feature_kinds`. With `write`, saves WORKDIR/evaluation/results.{json,md}
  (results_online.* with encoder="online", results_random_init.* with `random_init`).
  """
  started = time.time()
  types = resolve_eval_types(eval_types)
  check_encoder(encoder, random_init)
  req = _request(workdir, types, dataset, data_dir, max_examples, feature_kinds)
  seconds = {}
  step, params, source, splits = _restore_and_load(
    req, workdir, seconds, step=step, best=best, random_init=random_init, encoder=encoder
  )
  with _timed(seconds, "extract_features"):
    feats = embed(req.model, params, splits, req.feature_names, batch_size)
  metrics, details = _score(req, feats, splits, seconds)
  seconds["total"] = round(time.time() - started, 3)
  results = {
    "workdir": os.path.abspath(workdir),
    "step": int(step),
    "source": source,
    "random_init": bool(random_init),
    "encoder": "init" if random_init else encoder,
    "dataset": req.name,
    "splits": {role: {"split": req.split_names[role], "size": int(len(splits[role][1]))} for role in splits},
    "num_classes": req.num_classes,
    "max_examples": req.max_examples,
    "image_size": req.model.image_size,
    "feature_kinds": list(feats),
    "eval_types": list(req.types),
    "metrics": metrics,
    "details": details,
    "notes": _notes(req.model, feats),
    "seconds": seconds,
    "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "jax": {"version": jax.__version__, "backend": jax.default_backend()},
  }
  if write:
    write_results(workdir, results)
  return results


class _Request(NamedTuple):
  """What `evaluate_run` was asked, resolved against the run's own config."""

  types: tuple  # of EVAL_TYPES
  cfg: ml_collections.ConfigDict  # the run's config (WORKDIR/config.json over today's defaults)
  data_cfg: ml_collections.ConfigDict  # its data config, with --data_dir applied
  name: str  # the dataset
  split_names: dict  # {"train": split, "test": split}
  num_classes: int
  max_examples: int | None  # per split; None: whole splits
  model: Any
  feature_names: dict  # {result name: make_feature_fn kind}


def _request(workdir, types, dataset, data_dir, max_examples, feature_kinds):
  """Every argument checked and resolved (the run's config, dataset, splits, model) before anything is loaded."""
  cfg = load_run_config(workdir)
  data_cfg = cfg.data
  name = dataset or data_cfg.eval_dataset
  split_names = dict(zip(("train", "test"), eval_splits(name, data_cfg)))
  if data_dir:
    if name not in data_lib.DIR_KEYS:
      raise EvaluationError(f"--data_dir: dataset {name!r} has no folder to set")
    data_cfg.update_from_flattened_dict({data_lib.DIR_KEYS[name]: data_dir})
  num_classes = data_lib.num_classes(name, data_cfg)
  model = experiment.model(cfg)
  return _Request(
    types=types,
    cfg=cfg,
    data_cfg=data_cfg,
    name=name,
    split_names=split_names,
    num_classes=num_classes,
    max_examples=data_cfg.eval_max_examples if max_examples is None else max_examples,
    model=model,
    feature_names=feature_names(model, feature_kinds),
  )


def _restore_and_load(req, workdir, seconds, **which):
  """(step, encoder params, source, {role: (images, labels)}): the encoder `which` names and the labelled splits."""
  with _timed(seconds, "restore"):
    step, params, source = encoder_params(req.model, req.cfg, workdir, **which)
    params = jax.block_until_ready(params)
  with _timed(seconds, "load_data"):
    splits = {
      role: data_lib.load_labelled(
        req.name, split, req.data_cfg, image_size=req.model.image_size, max_examples=req.max_examples
      )
      for role, split in req.split_names.items()
    }
  if "fewshot" in req.types:
    _check_fewshot_possible(splits["test"][1])
  logging.info(
    "evaluating %s of %s on %s: %d train / %d test images",
    source,
    workdir,
    req.name,
    len(splits["train"][1]),
    len(splits["test"][1]),
  )
  return step, params, source, splits


def _score(req, feats, splits, seconds):
  """({feature name: metrics}, {feature name: details}) of every requested evaluation, each one timed."""
  metrics = {kind: {} for kind in feats}
  details = {kind: {} for kind in feats}
  for t in req.types:
    with _timed(seconds, t):
      for kind, f in feats.items():
        m, d = EVALUATIONS[t](f["train"], splits["train"][1], f["test"], splits["test"][1], req.num_classes)
        metrics[kind].update(m)
        details[kind].update(d)
    logging.info("%s done in %.1f s", t, seconds[t])
  return metrics, details


def _notes(model, feats):
  depth = model.encoder.depth
  return [
    f"{name}: the encoder has {depth} blocks, so the last-{LAST_BLOCKS} features concatenate all {depth}"
    for name in feats
    if name.startswith("last") and name != f"last{LAST_BLOCKS}"
  ]


# ---------------------------------------------------------------------------------------------
# Reports.
# ---------------------------------------------------------------------------------------------


def comparable(results, baseline):
  """True when two results cover the same images (their numbers can be compared)."""
  keys = ("dataset", "splits", "max_examples", "image_size")
  return baseline is not None and all(results.get(k) == baseline.get(k) for k in keys)


def write_results(workdir, results):
  """Saves `results` as json and re-renders every markdown report: the target beside the online encoder
  and the random init, the online encoder beside the random init (each where comparable)."""
  os.makedirs(os.path.join(workdir, "evaluation"), exist_ok=True)
  path = results_path(workdir, results["random_init"], encoder=results.get("encoder", "target"))
  jsonfile.write(path, results)
  target, online = (jsonfile.read(results_path(workdir, encoder=e)) for e in ENCODERS)
  baseline = jsonfile.read(results_path(workdir, True))
  if baseline is not None:
    jsonfile.write_text(results_path(workdir, True, "md"), format_table(baseline))
  for encoder, trained, others in (("target", target, (online, baseline)), ("online", online, (baseline,))):
    if trained is not None:
      beside = [o for o in others if comparable(trained, o)]
      jsonfile.write_text(results_path(workdir, ext="md", encoder=encoder), format_table(trained, *beside))


def _fmt(value):
  if isinstance(value, bool):
    return "yes" if value else "no"
  if value is None:
    return "-"
  return f"{value:.4g}"


def _cell(metrics, key):
  if key not in metrics:
    return ""
  ci = metrics.get(f"{key}_ci95")
  return _fmt(metrics[key]) + (f" ± {ci:.2g}" if ci is not None else "")


_LABELS = {"target": "", "online": " online", "init": " random init"}


def _label(results):
  return _LABELS["init" if results["random_init"] else results.get("encoder", "target")]


def _columns(results, others):
  """(title, metrics) per feature kind, each followed by its twins in `others` (online, random init)."""
  columns = []
  for kind in results["feature_kinds"]:
    for r in (results, *others):
      if kind in r["metrics"]:
        columns.append((kind + _label(r), r["metrics"][kind]))
  return columns


def format_table(results, *others):
  """Markdown: a header line, one row per metric, one column per feature kind (and its twins in `others`:
  the online encoder, the random init)."""
  r = results
  sizes = (
    f"{r['splits']['train']['size']} {r['splits']['train']['split']} / {r['splits']['test']['size']} "
    f"{r['splits']['test']['split']} images"
  )
  lines = [
    f"**{os.path.basename(r['workdir'])}**, step {r['step']}, {r['source']}; {r['dataset']}: {sizes}; {r['timestamp']}",
    "",
  ]
  columns = _columns(r, others)
  lines.append("| metric | " + " | ".join(name for name, _ in columns) + " |")
  lines.append("|:---|" + "---:|" * len(columns))
  keys = [k for k in r["metrics"][r["feature_kinds"][0]] if not k.endswith("_ci95")]
  lines += [f"| {k} | " + " | ".join(_cell(m, k) for _, m in columns) + " |" for k in keys]
  lines.append("")
  lines += [f"Note: {n}" for n in r["notes"]]
  lines.append("Wall time (s): " + ", ".join(f"{k} {v:.1f}" for k, v in r["seconds"].items()))
  return "\n".join(lines) + "\n"
