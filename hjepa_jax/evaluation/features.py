"""Frozen-feature extraction with the target encoder, jitted once per batch shape.

I-JEPA evaluates the target (EMA) encoder with average pooling over patch tokens; "last4" is the
concatenation of the average-pooled outputs of the last four blocks (a stronger probe input);
"levelK" keeps the layout of hierarchy level K: the last layer's tokens averaged over each
2^K x 2^K cell of the patch grid (the cells the level-K loss compares), cells concatenated. "tapK" is what
the level-K loss regresses onto: the layer-normalised tokens of the block it reads (the last one, or in the
deep design model.level_blocks[K]) pooled into its cells, so each level's own features can be probed.
"""

import jax
import jax.numpy as jnp
import numpy as np

from hjepa_jax import hierarchy, losses
from hjepa_jax.model.hjepa import normalize_images

FEATURE_KINDS = ("avgpool", "last4", "level1", "level2", "level3", "tap1", "tap2", "tap3")


def make_feature_fn(model, kinds=("avgpool",)):
  """jitted fn(enc_params, uint8 images) -> {kind: (B, D) float32}."""
  unknown = set(kinds) - set(FEATURE_KINDS)
  if unknown:
    raise ValueError(f"unknown feature kinds {sorted(unknown)}; choose from {FEATURE_KINDS}")
  deep_levels = len(model.level_blocks)
  too_deep = [k for k in kinds if k.startswith("tap") and deep_levels and int(k[len("tap") :]) >= deep_levels]
  if too_deep:
    raise ValueError(f"feature kinds {too_deep}: this model's deep hierarchy has levels 0..{deep_levels - 1} only")

  @jax.jit
  def fn(enc_params, images):
    out, aux = model.encode(enc_params, normalize_images(images))
    feats = {}
    if "avgpool" in kinds:
      feats["avgpool"] = out.mean(1)
    if "last4" in kinds:
      feats["last4"] = jnp.concatenate([b.astype(jnp.float32).mean(1) for b in aux["blocks"][-4:]], -1)
    for kind in kinds:
      if kind.startswith("level"):
        feats[kind] = level_features(out, model.grid, int(kind[len("level") :]))
      elif kind.startswith("tap"):
        level = int(kind[len("tap") :])
        tokens = aux["blocks"][model.level_blocks[level] - 1] if model.level_blocks else out
        feats[kind] = level_features(losses.layer_norm(tokens.astype(jnp.float32)), model.grid, level)
    return feats

  return fn


def extract_features(feature_fn, enc_params, images, batch_size=256):
  """Features of all `images` (uint8 NHWC numpy) in fixed-size batches; the last one is padded."""
  n = len(images)
  out = {}
  for start in range(0, n, batch_size):
    chunk = images[start : start + batch_size]
    pad = batch_size - len(chunk)
    if pad:
      chunk = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), chunk.dtype)])
    for k, v in jax.device_get(feature_fn(enc_params, chunk)).items():
      out.setdefault(k, []).append(v[: batch_size - pad])
  return {k: np.concatenate(v) for k, v in out.items()}


def level_features(tokens, grid, level):
  """(B, T, D) grid-ordered tokens -> (B, C_level * D): each level cell's mean token, concatenated."""
  b, t, d = tokens.shape
  idx = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t))
  pooled, _ = hierarchy.pool_to_level(tokens, idx, jnp.ones((b, t), bool), grid, level)
  return pooled.reshape(b, -1)
