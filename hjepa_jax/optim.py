"""AdamW with I-JEPA schedules: LR warmup + cosine, cosine weight-decay ramp, EMA momentum ramp."""
import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

# Parameter-name fragments never decayed (besides every 1-D parameter: biases, norms, LayerScale).
NO_DECAY_NAMES = ("pos", "mask_token", "cls")


@dataclasses.dataclass(frozen=True)
class OptimSpec:
  total_steps: int
  warmup_steps: int
  lr: float = 1.5e-4
  start_lr: float = 0.0
  final_lr: float = 1e-6
  weight_decay: float = 0.04
  final_weight_decay: float = 0.4
  b1: float = 0.9
  b2: float = 0.999
  eps: float = 1e-8
  clip_norm: float = 3.0        # global-norm clipping; 0 disables
  ema_start: float = 0.996
  ema_end: float = 1.0

  def __post_init__(self):
    if self.total_steps < 1:
      raise ValueError(f"total_steps must be >= 1, got {self.total_steps}")
    if not 0 <= self.warmup_steps <= self.total_steps:
      raise ValueError(f"warmup_steps must be in [0, total_steps={self.total_steps}], got {self.warmup_steps}")
    if not 0 <= self.ema_start <= self.ema_end <= 1:
      raise ValueError(f"EMA momentum must satisfy 0 <= start <= end <= 1, got {self.ema_start}, {self.ema_end}")


def lr_schedule(spec: OptimSpec):
  """Linear warmup start_lr -> lr over warmup_steps, then cosine to final_lr at total_steps."""
  return optax.warmup_cosine_decay_schedule(
      init_value=spec.start_lr, peak_value=spec.lr, warmup_steps=spec.warmup_steps,
      decay_steps=max(spec.total_steps, spec.warmup_steps + 1), end_value=spec.final_lr)


def _cosine_ramp(start, end, total):
  def fn(step):
    t = jnp.clip(jnp.asarray(step, jnp.float32) / total, 0.0, 1.0)
    return end + (start - end) * 0.5 * (1.0 + jnp.cos(math.pi * t))
  return fn


def wd_schedule(spec: OptimSpec):
  """Weight decay weight_decay -> final_weight_decay along a half cosine (I-JEPA: 0.04 -> 0.4)."""
  return _cosine_ramp(spec.weight_decay, spec.final_weight_decay, spec.total_steps)


def ema_schedule(spec: OptimSpec):
  """Target-encoder momentum, linear ema_start -> ema_end over the whole run (I-JEPA)."""
  def fn(step):
    t = jnp.clip(jnp.asarray(step, jnp.float32) / spec.total_steps, 0.0, 1.0)
    return spec.ema_start + (spec.ema_end - spec.ema_start) * t
  return fn


def decay_mask(params):
  """True for parameters that get weight decay: >= 2-D and not position/mask-token-like."""
  def decays(path, p):
    names = "/".join(str(getattr(k, "key", k)) for k in path).lower()
    return p.ndim >= 2 and not any(n in names for n in NO_DECAY_NAMES)
  return jax.tree_util.tree_map_with_path(decays, params)


class _WDState(NamedTuple):
  count: jax.Array


def add_scheduled_weight_decay(schedule, mask):
  """Decoupled weight decay whose coefficient follows `schedule(update count)` on `mask`ed leaves."""
  def init(params):
    del params
    return _WDState(jnp.zeros([], jnp.int32))

  def update(updates, state, params):
    wd = schedule(state.count)
    updates = jax.tree_util.tree_map(lambda u, p, m: u + wd * p if m else u, updates, params, mask)
    return updates, _WDState(state.count + 1)

  return optax.GradientTransformation(init, update)


def make_optimizer(spec: OptimSpec, params):
  """clip -> Adam moments -> scheduled decoupled weight decay -> scheduled learning rate."""
  parts = [optax.clip_by_global_norm(spec.clip_norm)] if spec.clip_norm > 0 else []
  parts += [
      optax.scale_by_adam(b1=spec.b1, b2=spec.b2, eps=spec.eps),
      add_scheduled_weight_decay(wd_schedule(spec), decay_mask(params)),
      optax.scale_by_learning_rate(lr_schedule(spec)),
  ]
  return optax.chain(*parts)
