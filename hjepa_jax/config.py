"""The full config schema, its validation, run-time durations, and the "every key is read" check.

Every config file starts from `base_config()`, which holds every key the code reads, so a
misspelt key set on the command line or in a config file fails with a suggestion. After set-up,
`ConfigReader.unread()` names keys no code read, which also fails the start-up: a switch is
never silently ignored. Durations are `*_epochs` or `*_steps` pairs resolved here once the
dataset size and batch size are known, so `--config.data.batch_size=16` keeps every schedule right.
"""

import difflib
import math
import os

import ml_collections
from ml_collections import config_dict

from hjepa_jax.data.config import default_data_config


class ConfigError(ValueError):
  """A config problem, with the offending key and the fix in the message."""


def base_config() -> ml_collections.ConfigDict:
  """Every key the trainer reads, with defaults (I-JEPA ViT-S/16 values where they exist)."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  # Run length and periodic actions: set *_epochs, or *_steps (which then wins).
  c.total_epochs = 50.0
  c.total_steps = config_dict.placeholder(int)
  c.time_budget_hours = config_dict.placeholder(float)  # warn once if the predicted run is longer (launch/plan.py)
  c.log_every_steps = 50
  c.log_mask_images = True  # TensorBoard images of context/target masks at each eval
  # TensorBoard histograms of every parameter (params/...) and pre-clip gradient (grads/...) leaf every N steps;
  # 0 turns them off (train_step then computes nothing extra). 500: a few dozen snapshots over an overnight run;
  # the binning runs inside train_step only at those steps (a lax.cond), so other steps cost the same.
  c.histogram_every_steps = 500
  # A jax.profiler trace of this many steps right after the compile (the session's 2nd step on), in WORKDIR/profile
  # (TensorBoard's Profile tab, or ui.perfetto.dev); process 0 only. 0: off, and nothing extra runs.
  c.profile_steps = 0
  c.ckpt_every_epochs = 1.0
  c.ckpt_every_steps = config_dict.placeholder(int)
  c.keep_checkpoints = 3  # newest k kept; the best is kept apart in best/
  c.resume = config_dict.placeholder(str)  # start from another run's checkpoint dir or step dir
  # A NaN/Inf loss or gradient skips its update (state untouched, the step still counts); a run that skips
  # more than this many updates stops, naming the last good checkpoint. 0: the first one stops the run.
  c.max_skipped_steps = 0
  c.best_metric = "eval/knn_top1_k20"  # kept in best/; "" for none, or "train/loss"
  c.best_mode = "max"  # max | min

  # Fast evaluation during training (average-pooled features, a subset).
  c.eval = ml_collections.ConfigDict()
  c.eval.every_epochs = 5.0  # 0 disables
  c.eval.every_steps = config_dict.placeholder(int)
  c.eval.max_examples = 5000  # per split (also capped by data.eval_max_examples)
  c.eval.knn_ks = (20,)
  c.eval.batch_size = 256
  # Encoders scored at each evaluation: "target" (EMA; eval/knn_top1_k20 ...), "online" (the context
  # encoder; eval/online/...), "init" (the run's step-0 encoder, scored once: eval/init/..., the baseline).
  c.eval.encoders = ("target", "online")
  # TensorBoard images of the target encoder's last-block attention (mean over heads and queries: the attention
  # each patch receives) on the first N images of the eval test split, the same images at every evaluation; 0: off.
  c.eval.attention_images = 4

  # WORKDIR/report.md at the end of training (launch/report.py rewrites it): the seed guide's success criteria
  # of which recipe are ticked, "conservative" | "aggressive" | "none".
  c.report = ml_collections.ConfigDict(dict(criteria="none"))

  c.model = ml_collections.ConfigDict()
  c.model.variant = "S/16"  # Ti|S|M|B|L|H / patch; "" to give all dims below
  c.model.width = config_dict.placeholder(int)  # explicit dims override the variant's
  c.model.depth = config_dict.placeholder(int)
  c.model.num_heads = config_dict.placeholder(int)
  c.model.patch_size = config_dict.placeholder(int)
  c.model.mlp_ratio = 4.0
  c.model.fused_attention = True  # jax.nn.dot_product_attention ("flash attention")
  c.model.attention_impl = "auto"  # auto | xla | cudnn
  c.model.layerscale = False
  c.model.layerscale_init = 1e-5
  c.model.rope = False  # 2-D rotary position embedding on the patch grid
  c.model.rope_base = 100.0
  c.model.remat = "none"  # none | nothing_saveable | dots_with_no_batch_dims_saveable | ...
  c.model.dtype = "float32"  # compute dtype: float32 | bfloat16 (params stay float32)
  # layout: "joint" (one sequence per image, blocks kept apart by an attention mask: fewer FLOPs; 3 paired seeds
  # score the same as per_block, docs/switch_buys.md) | "per_block" (I-JEPA: one sequence per target block);
  # docs/algorithm.md "Encoders and predictor".
  c.model.predictor = ml_collections.ConfigDict(dict(width=384, depth=6, num_heads=6, layout="joint"))
  # Feature Pyramid Network over the hierarchy levels (phase 3): lateral projections of each level's
  # predictions to feature_dim, top-down from the coarsest level, fused by add | concat.
  c.model.fpn = ml_collections.ConfigDict(dict(enabled=False, feature_dim=256, fusion="add"))
  # Projection head of the view-level losses (loss.contrastive, loss.vicreg): Dense-LN-GELU-Dense.
  c.model.projector = ml_collections.ConfigDict(dict(hidden_dim=1024, dim=256))

  c.mask = ml_collections.ConfigDict()
  c.mask.num_targets = 4
  c.mask.target_scale = (0.15, 0.2)
  c.mask.target_aspect = (0.75, 1.5)
  c.mask.context_scale = (0.85, 1.0)
  c.mask.context_aspect = (1.0, 1.0)
  c.mask.min_context = 10
  # Token slots per context / target block: "batch_min" sizes them to the expected smallest of a batch
  # of data.batch_size (what I-JEPA computes; larger ones keep a random subset), "exact" never drops one.
  c.mask.capacity = "batch_min"

  c.loss = ml_collections.ConfigDict()
  c.loss.type = "smooth_l1"  # smooth_l1 | mse
  c.loss.num_hierarchies = 3
  c.loss.hierarchy_weights = (1.0, 0.5, 0.25)
  # What the levels >= 1 predict (hjepa_jax/levels.py): "pooled" (level 0's predictions and targets averaged
  # over 2^k cells), "deep" (level k: its own predictor on the context encoder's block d_k, regressed onto the
  # target encoder's block d_k, over 2^k cells), "multiscale" (level k: its own fewer, larger target blocks).
  c.loss.hierarchy = "pooled"
  # deep: the encoder block (1-based) each level >= 1 reads, () = evenly spaced below the top; the depth of
  # each level's own predictor (width and heads: model.predictor's).
  c.loss.deep = ml_collections.ConfigDict(dict(blocks=(), predictor_depth=1))
  # multiscale: level k draws max(1, mask.num_targets // 2^k) target blocks of scale mask.target_scale x
  # scale_growth^k (capped at 1) with its own context, predicted by the shared predictor.
  c.loss.multiscale = ml_collections.ConfigDict(dict(scale_growth=2.0))
  # C-JEPA-style contrastive (InfoNCE) term between two views (phase 3); weight 0 disables.
  c.loss.contrastive = ml_collections.ConfigDict(dict(weight=0.0, temperature=0.1))
  # VICReg regulariser on the projected views of the SAME images (C-JEPA); weight 0 disables.
  # Coefficients as in VICReg; on_predictions adds variance/covariance of block-mean predictions.
  c.loss.vicreg = ml_collections.ConfigDict(
    dict(weight=0.0, invariance=25.0, variance=25.0, covariance=1.0, on_predictions=False)
  )

  # SIGReg (LeJEPA) on the context encoder's mean token of each image: pushes the features the probes read
  # towards an isotropic Gaussian along num_slices random directions a step (Epps-Pulley statistic, num_points
  # nodes on [0, t_max]); weight 0 disables. No second view needed.
  c.loss.sigreg = ml_collections.ConfigDict(dict(weight=0.0, num_slices=256, num_points=17, t_max=3.0))

  c.optim = ml_collections.ConfigDict()
  c.optim.lr = 1.5e-4
  c.optim.start_lr = 0.0
  c.optim.final_lr = 1e-6
  c.optim.warmup_epochs = 5.0
  c.optim.warmup_steps = config_dict.placeholder(int)
  # Warmup is capped at this fraction of the run, so a short run still gets its cosine decay
  # (e.g. 600 steps with a 1-epoch warmup: 120 warmup steps, not 600). In [0, 1).
  c.optim.warmup_max_fraction = 0.2
  c.optim.weight_decay = 0.04
  c.optim.final_weight_decay = 0.4
  c.optim.b1 = 0.9
  c.optim.b2 = 0.999
  c.optim.eps = 1e-8
  c.optim.clip_norm = 3.0  # 0 disables clipping
  c.optim.grad_accum_steps = 1  # effective batch = data.batch_size * this

  # Target-encoder momentum: start -> end along `schedule` (linear: I-JEPA; cosine: BYOL) over the first
  # ramp_fraction of the run, then end. start == end is a constant momentum. Short runs want a lower
  # end or a shorter ramp: with 0.996 -> 1.0 over 600 steps the target still holds ~30% of its init.
  c.ema = ml_collections.ConfigDict(dict(start=0.996, end=1.0, schedule="linear", ramp_fraction=1.0))

  c.data = default_data_config()
  return c


# ---------------------------------------------------------------------------------------------
# Validation against the schema.
# ---------------------------------------------------------------------------------------------


def _leaves(cfg, prefix=""):
  for key, value in cfg.items():
    path = prefix + key
    if isinstance(value, ml_collections.ConfigDict):
      yield from _leaves(value, path + ".")
    else:
      yield path, value


def parent_and_leaf(cfg, dotted):
  """(the node holding `dotted`'s last part, that part): `node[leaf]` reads or sets the key "a.b.c" of `cfg`."""
  *parents, leaf = dotted.split(".")
  node = cfg
  for part in parents:
    node = node[part]
  return node, leaf


def _field_type(cfg, path):
  node, leaf = parent_and_leaf(cfg, path)
  return node.get_type(leaf) if isinstance(node, ml_collections.ConfigDict) else type(node[leaf])


def unknown_key(path, known):
  """The message for a key the schema lacks, with the closest known dotted key."""
  close = difflib.get_close_matches(path, known, n=1)
  return f"unknown config key {path!r}" + (f" (did you mean {close[0]!r}?)" if close else "")


def _finite(value):
  """False for NaN/inf anywhere in a number or a tuple of numbers (no key means either)."""
  if isinstance(value, (tuple, list)):
    return all(map(_finite, value))
  return not isinstance(value, float) or math.isfinite(value)


def check_schema(config, schema=None):
  """Unknown keys (with the closest known name), values of the wrong type and NaN/inf fail here."""
  schema = schema or base_config()
  known = dict(_leaves(schema))
  errors = []
  for path, value in _leaves(config):
    if path not in known:
      errors.append(unknown_key(path, known))
      continue
    want = _field_type(schema, path)
    if value is None or want is type(None):
      continue
    ok = isinstance(value, want) or (want is float and isinstance(value, int) and not isinstance(value, bool))
    if want in (tuple, list):
      ok = isinstance(value, (tuple, list))
    if not ok:
      errors.append(f"config key {path!r} must be of type {want.__name__}, got {value!r}")
    elif not _finite(value):
      errors.append(f"config key {path!r} must be a finite number, got {value!r}")
  if len(errors) > 1:
    raise ConfigError("invalid config:\n  " + "\n  ".join(errors))
  if errors:
    raise ConfigError(errors[0])


def require(cond, key, message):
  if not cond:
    raise ConfigError(f"config key {key!r}: {message}")


# ---------------------------------------------------------------------------------------------
# Read tracking.
# ---------------------------------------------------------------------------------------------


class ConfigReader:
  """Read-only view of a ConfigDict that records every leaf read (attribute or item access)."""

  def __init__(self, cfg, prefix="", seen=None):
    object.__setattr__(self, "_cfg", cfg)
    object.__setattr__(self, "_prefix", prefix)
    object.__setattr__(self, "_seen", set() if seen is None else seen)

  def _wrap(self, key, value):
    path = self._prefix + key
    if isinstance(value, ml_collections.ConfigDict):
      return ConfigReader(value, path + ".", self._seen)
    self._seen.add(path)
    return value

  def __getattr__(self, key):
    if key.startswith("__"):
      raise AttributeError(key)
    try:
      value = self._cfg[key]
    except (KeyError, AttributeError):
      known = [self._prefix + k for k in self._cfg.keys()]
      raise ConfigError(unknown_key(self._prefix + key, known)) from None
    return self._wrap(key, value)

  __getitem__ = __getattr__

  def __setattr__(self, key, value):
    raise AttributeError("ConfigReader is read-only")

  def __contains__(self, key):
    return key in self._cfg

  def get(self, key, default=None):
    return self[key] if key in self._cfg else default

  def keys(self):
    return self._cfg.keys()

  def items(self):
    return [(k, self[k]) for k in self._cfg.keys()]

  def to_dict(self):
    """Plain dict of this subtree; every leaf beneath counts as read."""
    return {k: (v.to_dict() if isinstance(v, ConfigReader) else v) for k, v in self.items()}

  @property
  def raw(self):
    return self._cfg

  def unread(self):
    return sorted(p for p, _ in _leaves(self._cfg, self._prefix) if p not in self._seen)

  def assert_all_read(self):
    missing = self.unread()
    if missing:
      raise ConfigError(
        "config keys that no code reads (a switch that would be silently ignored): "
        + ", ".join(repr(m) for m in missing)
        + ". Remove them or fix their spelling."
      )


# ---------------------------------------------------------------------------------------------
# Durations.
# ---------------------------------------------------------------------------------------------


def resolve_steps(cfg, name, steps_per_epoch, *, allow_zero=False):
  """`{name}_steps` if set, else `{name}_epochs` * steps_per_epoch rounded (at least 1 for a positive count).

  `name` is dotted from the root of `cfg` ("optim.warmup"), so errors name the full key; both keys
  are read. Zero is refused unless `allow_zero` (there it turns the action off): `total_steps=0`
  must not quietly train one step.
  """
  node, leaf = parent_and_leaf(cfg, name)
  steps, epochs = node[f"{leaf}_steps"], node[f"{leaf}_epochs"]
  least = 0 if allow_zero else 1
  if steps is not None:
    require(steps >= least, f"{name}_steps", f"must be >= {least}, got {steps}")
    return steps
  require(epochs is not None, f"{name}_epochs", f"set {name}_epochs or {name}_steps")
  require(
    epochs >= 0 if allow_zero else epochs > 0,
    f"{name}_epochs",
    f"must be {'>= 0' if allow_zero else '> 0'}, got {epochs}",
  )
  return max(1, int(round(epochs * steps_per_epoch))) if epochs > 0 else 0


def parse_arg(arg, **defaults):
  """big_vision-style config argument: "model=Ti/16,runlocal" -> dict with typed values.

  Types come from the defaults; a bool is `name`, `name=True` or `name=False` (anything else, like
  "Ture", fails naming the argument rather than silently reading as False); unknown names raise.
  """
  out = dict(defaults)
  for item in filter(None, (arg or "").split(",")):
    name, sep, value = item.partition("=")
    name = name.strip()
    if name not in defaults:
      raise ConfigError(f"unknown config argument {name!r}; known: {sorted(defaults)}")
    kind = type(defaults[name])
    if not sep:
      if kind is not bool:
        raise ConfigError(f"config argument {name!r} needs a value ({name}=...)")
      out[name] = True
    elif kind is bool:
      text = value.strip()
      if text not in ("True", "False"):
        raise ConfigError(
          f"config argument {name!r} is a bool: write {name}=True or {name}=False "
          f"(or a bare {name}), got {name}={text!r}"
        )
      out[name] = text == "True"
    else:
      try:
        out[name] = kind(value.strip())
      except ValueError:
        raise ConfigError(f"config argument {name!r} needs a {kind.__name__}, got {name}={value.strip()!r}") from None
  return out


def load_config(path, arg=None):
  """`get_config(arg)` of a config file (`get_config()` without an arg, as `--config` calls it), e.g. to
  derive one config from another; ConfigError if the file has no get_config."""
  import importlib.util  # pylint: disable=g-import-not-at-top

  spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(path))[0], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  if not callable(getattr(module, "get_config", None)):
    raise ConfigError(f"config file {path} defines no get_config(arg=None) returning the ConfigDict")
  return module.get_config(arg) if arg is not None else module.get_config()


def check_workdir(path):
  """Raises ConfigError unless `path` is, or can be made, a writable run directory (before any compile)."""
  if not path:
    raise ConfigError("--workdir is empty: give the run directory (it is created if missing)")
  if os.path.exists(path) and not os.path.isdir(path):
    raise ConfigError(f"--workdir={path} is a file, not a directory: give a directory (it is created if missing)")
  parent = os.path.abspath(path)
  while not os.path.exists(parent):
    parent = os.path.dirname(parent)
  if not os.path.isdir(parent):
    raise ConfigError(f"--workdir={path} cannot be created: {parent} is a file, not a directory")
  if not os.access(parent, os.W_OK | os.X_OK):
    raise ConfigError(f"--workdir={path}: {parent} is not writable; choose a directory you can write to")
