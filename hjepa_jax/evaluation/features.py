"""Frozen-feature extraction with the target encoder, jitted once per batch shape.

I-JEPA evaluates the target (EMA) encoder with average pooling over patch tokens; "last4" is the
concatenation of the average-pooled outputs of the last four blocks (a stronger probe input).
"""
import jax
import jax.numpy as jnp
import numpy as np

from hjepa_jax.model.hjepa import normalize_images

FEATURE_KINDS = ("avgpool", "last4")


def make_feature_fn(model, kinds=("avgpool",)):
  """jitted fn(enc_params, uint8 images) -> {kind: (B, D) float32}."""
  unknown = set(kinds) - set(FEATURE_KINDS)
  if unknown:
    raise ValueError(f"unknown feature kinds {sorted(unknown)}; choose from {FEATURE_KINDS}")

  @jax.jit
  def fn(enc_params, images):
    out, aux = model.encode(enc_params, normalize_images(images))
    feats = {}
    if "avgpool" in kinds:
      feats["avgpool"] = out.mean(1)
    if "last4" in kinds:
      feats["last4"] = jnp.concatenate([b.astype(jnp.float32).mean(1) for b in aux["blocks"][-4:]], -1)
    return feats

  return fn


def extract_features(feature_fn, enc_params, images, batch_size=256):
  """Features of all `images` (uint8 NHWC numpy) in fixed-size batches; the last one is padded."""
  n = len(images)
  out = {}
  for start in range(0, n, batch_size):
    chunk = images[start:start + batch_size]
    pad = batch_size - len(chunk)
    if pad:
      chunk = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), chunk.dtype)])
    for k, v in jax.device_get(feature_fn(enc_params, chunk)).items():
      out.setdefault(k, []).append(v[:batch_size - pad])
  return {k: np.concatenate(v) for k, v in out.items()}
