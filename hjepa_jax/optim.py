"""AdamW with I-JEPA schedules, built from optax's own pieces.

LR: linear warmup then cosine (`optax.warmup_cosine_decay_schedule`); weight decay: a cosine ramp
weight_decay -> final_weight_decay (I-JEPA's 0.04 -> 0.4); both injected into `optax.adamw` with
`optax.inject_hyperparams`, so the values of the current step live in the optimizer state and are
logged from there. (optax 0.2.5, the jax-metal profile, accepts no schedule as adamw's
weight_decay; inject_hyperparams works on every profile.) EMA momentum: a linear (I-JEPA) or cosine
(BYOL) ramp ema_start -> ema_end over the first `ema_ramp_steps` steps, then ema_end. The run-length
rules (warmup at most a fraction of the run, so the cosine decay always happens; the EMA ramp as a
fraction of the run) are applied where the steps are resolved, `experiment.build_experiment`.
"""

import dataclasses

import jax
import optax

# Parameter-name fragments never decayed (besides every 1-D parameter: biases, norms, LayerScale).
NO_DECAY_NAMES = ("pos", "mask_token", "cls")


@dataclasses.dataclass(frozen=True)
class OptimSpec:
  """Optimizer and EMA settings; experiment.optim_spec builds it from `config.optim` and `config.ema`."""

  total_steps: int
  warmup_steps: int
  lr: float
  start_lr: float
  final_lr: float
  weight_decay: float
  final_weight_decay: float
  b1: float
  b2: float
  eps: float
  clip_norm: float  # global-norm clipping; 0 disables
  ema_start: float
  ema_end: float
  ema_schedule: str  # one of EMA_SCHEDULES
  ema_ramp_steps: int  # ema_start -> ema_end over these steps, then ema_end


EMA_SCHEDULES = ("linear", "cosine")


def lr_schedule(spec: OptimSpec):
  """Linear warmup start_lr -> lr over warmup_steps, then cosine to final_lr at total_steps."""
  return optax.warmup_cosine_decay_schedule(
    init_value=spec.start_lr,
    peak_value=spec.lr,
    warmup_steps=spec.warmup_steps,
    decay_steps=max(spec.total_steps, spec.warmup_steps + 1),
    end_value=spec.final_lr,
  )


def wd_schedule(spec: OptimSpec):
  """Weight decay weight_decay -> final_weight_decay along a half cosine over the run."""
  unit = optax.cosine_decay_schedule(1.0, max(spec.total_steps, 1))  # 1 -> 0
  return lambda step: spec.final_weight_decay + (spec.weight_decay - spec.final_weight_decay) * unit(step)


def ema_schedule(spec: OptimSpec):
  """Target-encoder momentum ema_start -> ema_end over ema_ramp_steps, then held at ema_end.

  "linear" over the whole run is I-JEPA's; "cosine" (BYOL's) stays near ema_start longer, so the
  target keeps tracking the online encoder early on; a ramp shorter than the run, or ema_start ==
  ema_end (constant), keeps a short run's target from freezing on its initial weights.
  """
  steps = max(spec.ema_ramp_steps, 1)
  if spec.ema_schedule == "linear":
    return optax.linear_schedule(spec.ema_start, spec.ema_end, steps)
  if spec.ema_schedule == "cosine":
    unit = optax.cosine_decay_schedule(1.0, steps)  # 1 -> 0, then 0
    return lambda step: spec.ema_end - (spec.ema_end - spec.ema_start) * unit(step)
  raise ValueError(f"EMA schedule {spec.ema_schedule!r} not in {EMA_SCHEDULES}")


def path_name(path):
  """ "encoder/blocks_0/qkv/kernel": a pytree key path as weight-decay rules and histogram tags name it."""
  return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


def decay_mask(params):
  """True for parameters that get weight decay: >= 2-D and not position/mask-token-like."""

  def decays(path, p):
    names = path_name(path).lower()
    return p.ndim >= 2 and not any(n in names for n in NO_DECAY_NAMES)

  return jax.tree_util.tree_map_with_path(decays, params)


def make_optimizer(spec: OptimSpec, params):
  """clip by global norm -> AdamW with scheduled learning rate and decoupled weight decay.

  `params` (arrays or ShapeDtypeStructs) fixes the decay mask.
  """
  adamw = optax.inject_hyperparams(optax.adamw)(
    learning_rate=lr_schedule(spec),
    weight_decay=wd_schedule(spec),
    b1=spec.b1,
    b2=spec.b2,
    eps=spec.eps,
    mask=decay_mask(params),
  )
  clip = [optax.clip_by_global_norm(spec.clip_norm)] if spec.clip_norm > 0 else []
  return optax.chain(*clip, adamw)  # always a chain: AdamW's state is the last entry


def hyperparams(opt_state):
  """The injected hyperparameters (learning_rate, weight_decay, ...) the last update used."""
  return opt_state[-1].hyperparams
