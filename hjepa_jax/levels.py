"""Hierarchy designs (`loss.hierarchy`): what level k of H-JEPA predicts, from what, against which target.

Every design keeps level 0 as I-JEPA's patch-level loss (the predictor on the context encoder's output,
regressed onto the layer-normalised target encoder output) and compares level k >= 1 over 2^k x 2^k cells
of the patch grid (hierarchy.pool_to_level). They differ in what level k >= 1 sees:

  pooled      level k pools level 0's own predictions and targets. A low-pass copy of the level-0 error:
              a predictor that fits level 0 fits it too (BENCHMARKS.md "The hierarchy's worth").
  deep        deep supervision with a predictor per level (LocalMIM, V-JEPA 2.1, ijepa issue #6): level k
              reads the context encoder's block d_k through its own narrow predictor and regresses onto
              the layer-normalised output of the target encoder's block d_k. New information: an
              intermediate layer's features, and a direct gradient into the encoder's lower blocks.
  multiscale  per-level masks (V-JEPA 2's mixed mask scales): level k draws its own, fewer and larger
              target blocks (num_targets[k-1] of scale mask.target_scale x scale_growth^k) with their own
              context, and the shared predictor predicts them. New information: content that level 0's
              small blocks never hide, at the cost of one more context-encoder and predictor pass per level.

`level_terms` returns, per level, the arrays the loss and the position-only floor need; shapes are static
in every design (the level masks have fixed capacities like level 0's), so train_step compiles once.
"""

import dataclasses
from typing import NamedTuple

import jax

from hjepa_jax import losses
from hjepa_jax import masks as masks_lib

DESIGNS = ("pooled", "deep", "multiscale")


@dataclasses.dataclass(frozen=True)
class HierarchySpec:
  """Static description of the levels; experiment.hierarchy_spec builds and checks it from `config.loss`."""

  design: str  # one of DESIGNS
  weights: tuple  # one loss weight per level, level 0 first
  level_masks: tuple = ()  # multiscale: one MaskSpec per level >= 1

  @property
  def num_levels(self):
    return len(self.weights)


class Level(NamedTuple):
  """One level's inputs to the loss (the order losses.levels_loss reads): predictions and targets (B, M, K, D) at
  grid indices idx (B, M, K) with validity valid, compared over 2^pool cells; full_target (B, N, D) is the
  target at every patch (the position-only floor's)."""

  pred: jax.Array
  target: jax.Array
  idx: jax.Array
  valid: jax.Array
  pool: int
  full_target: jax.Array


def default_blocks(depth, num_levels):
  """Encoder block (1-based) each level reads in the deep design: evenly spaced from the top, level 0 last."""
  return tuple(max(1, round(depth * (num_levels - k) / num_levels)) for k in range(num_levels))


def level_mask_spec(base: masks_lib.MaskSpec, level, num_targets, scale_growth):
  """The multiscale design's mask spec of `level` (capacities still 0): fewer, larger target blocks."""
  growth = scale_growth**level
  lo, hi = (min(1.0, s * growth) for s in base.target_scale)
  return dataclasses.replace(
    base, num_targets=num_targets, target_scale=(lo, hi), context_capacity=0, target_capacity=0
  )


def sample_level_masks(spec: HierarchySpec, rng, batch_size):
  """The multiscale design's masks of levels 1.. (a tuple of mask dicts; empty for the other designs).

  Drawn from the step's rng folded with 1000 + level, so level 0's masks (and view 2's) are the same in every
  design: a paired comparison sees the same level-0 task.
  """
  return tuple(
    masks_lib.sample_masks(jax.random.fold_in(rng, 1000 + k), batch_size, m)
    for k, m in enumerate(spec.level_masks, start=1)
  )


def _gather(full, idx):
  return jax.vmap(lambda f, i: f[i])(full, idx)


def level_terms(spec: HierarchySpec, model, params, images, masks, level_masks, pred, ctx_aux, full_ln, target_aux):
  """[Level] of every level, level 0 first.

  pred: level 0's predictions; ctx_aux / target_aux: the context / target encoder's aux (its blocks); full_ln:
  the layer-normalised target encoder output (B, N, D). Params of the deep design's predictors are
  params["levels"]["level_k"].
  """
  idx, valid = masks["target_idx"], masks["target_valid"]
  out = [Level(pred, _gather(full_ln, idx), idx, valid, 0, full_ln)]
  for k in range(1, spec.num_levels):
    if spec.design == "pooled":
      out.append(out[0]._replace(pool=k))
    elif spec.design == "deep":
      block = model.level_blocks[k] - 1
      tapped = losses.layer_norm(ctx_aux["blocks"][block].astype(full_ln.dtype))
      p = model.predict_level(params, k, tapped, masks)
      full = jax.lax.stop_gradient(losses.layer_norm(target_aux["blocks"][block].astype(full_ln.dtype)))
      out.append(Level(p, _gather(full, idx), idx, valid, k, full))
    else:  # multiscale
      m = level_masks[k - 1]
      p, _, _ = model.predict(params, images, m)
      out.append(Level(p, _gather(full_ln, m["target_idx"]), m["target_idx"], m["target_valid"], k, full_ln))
  return out
