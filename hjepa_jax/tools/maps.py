"""Per-patch views of a checkpoint: attention, PCA of patch features, per-level prediction error.

Each returns numpy arrays on the patch grid, for launch/visualize.py to draw (tools/figures.py)
and for tests to check against the model and the loss.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from hjepa_jax import hierarchy, losses
from hjepa_jax.model import posemb
from hjepa_jax.model.hjepa import normalize_images


# ---------------------------------------------------------------------------------------------
# Attention.
# ---------------------------------------------------------------------------------------------


def _block_index(i, depth):
  if not -depth <= i < depth:
    raise ValueError(f"block {i} does not exist: the encoder has {depth} blocks (0..{depth - 1}, or -1 for the last)")
  return i % depth


@functools.partial(jax.jit, static_argnums=(0, 3))
def _attention_weights(encoder, enc_params, images, blocks):
  _, state = encoder.apply(
    {"params": enc_params},
    normalize_images(images),
    mutable=["intermediates"],
    capture_intermediates=lambda mdl, _: mdl.name == "qkv",
  )
  tr = state["intermediates"]["transformer"]
  b, t = images.shape[0], (images.shape[1] // encoder.patch_size) * (images.shape[2] // encoder.patch_size)
  heads, hd = encoder.num_heads, encoder.width // encoder.num_heads
  grid = (images.shape[1] // encoder.patch_size, images.shape[2] // encoder.patch_size)
  out = []
  for i in blocks:
    qkv = tr[f"block_{i}"]["qkv"]["__call__"][0].astype(jnp.float32).reshape(b, t, 3 * heads, hd)
    q, k, _ = jnp.split(qkv, 3, axis=2)
    if encoder.opts.rope:  # the blocks rotate q and k by grid position before the dot product
      pos = jnp.broadcast_to(jnp.asarray(posemb.grid_positions(grid)), (b, t, 2))
      q = posemb.apply_rope_2d(q, pos, encoder.opts.rope_base)
      k = posemb.apply_rope_2d(k, pos, encoder.opts.rope_base)
    logits = jnp.einsum("bthd,bshd->bhts", q, k, precision=jax.lax.Precision.HIGHEST) * hd**-0.5
    out.append(jax.nn.softmax(logits, axis=-1))
  return jnp.stack(out, 1)


def attention_weights(model, enc_params, images_uint8, blocks=(-1,)):
  """float32 (B, len(blocks), heads, N, N): softmax(q k^T / sqrt(d)) of the full-image encoder.

  q and k are recomputed from each block's captured `qkv` Dense output (flax
  capture_intermediates), so the fused attention kernel used in training is left untouched.
  """
  blocks = tuple(_block_index(i, model.encoder.depth) for i in blocks)
  return np.asarray(_attention_weights(model.encoder, enc_params, jnp.asarray(images_uint8), blocks))


def attention_maps(weights, grid, heads=None, query=None):
  """(B, blocks, heads, gh, gw) grid maps from `attention_weights` output.

  query=None: mean attention each patch receives over all queries (sums to 1 over the grid);
  query=(row, col) or a raster index: where that patch attends.
  """
  w = np.asarray(weights)
  if heads is not None:
    bad = [h for h in heads if not 0 <= h < w.shape[2]]
    if bad:
      raise ValueError(f"heads {bad} do not exist: the encoder has {w.shape[2]} heads (0..{w.shape[2] - 1})")
    w = w[:, :, list(heads)]
  if query is None:
    maps = w.mean(-2)
  else:
    q = query[0] * grid[1] + query[1] if isinstance(query, (tuple, list)) else int(query)
    maps = w[..., q, :]
  return maps.reshape(*maps.shape[:-1], *grid)


# ---------------------------------------------------------------------------------------------
# PCA of patch features.
# ---------------------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnums=0)
def _features(encoder, enc_params, images):
  return encoder.apply({"params": enc_params}, normalize_images(images))[0]


def patch_features(model, enc_params, images_uint8):
  """float32 (B, N, D): encoder features of every patch of the full image (pass the target params)."""
  return np.asarray(_features(model.encoder, enc_params, jnp.asarray(images_uint8)))


def _pca3(x):
  """Top-3 principal component scores of rows of x, signs fixed (largest loading positive)."""
  x = x - x.mean(0)
  _, _, vt = np.linalg.svd(x.astype(np.float64), full_matrices=False)
  vt = vt[:3]
  vt *= np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(1)])[:, None]
  scores = x @ vt.T
  if scores.shape[1] < 3:
    scores = np.pad(scores, ((0, 0), (0, 3 - scores.shape[1])))
  return scores


def _to_unit(scores, axis, lo=1.0, hi=99.0):
  a, b = np.percentile(scores, lo, axis=axis, keepdims=True), np.percentile(scores, hi, axis=axis, keepdims=True)
  return np.clip((scores - a) / np.maximum(b - a, 1e-8), 0, 1)


def pca_rgb(features, grid, shared=True):
  """float32 (B, gh, gw, 3) in [0, 1]: the top-3 PCA components of patch features as RGB.

  shared=True fits one PCA (and one normalisation) on all images, so equal colours mean similar
  features across images; shared=False fits each image alone (more contrast within an image).
  """
  f = np.asarray(features, np.float64)
  b, n, d = f.shape
  if shared:
    rgb = _to_unit(_pca3(f.reshape(b * n, d)), axis=0).reshape(b, n, 3)
  else:
    rgb = np.stack([_to_unit(_pca3(x), axis=0) for x in f])
  return rgb.reshape(b, *grid, 3).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Per-level prediction error.
# ---------------------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnums=(0, 5, 6))
def _prediction_errors(model, params, target_params, images, masks, num_levels, loss_type):
  x = normalize_images(images)
  full, _ = model.encode(target_params, x)
  target = jax.vmap(lambda f, i: f[i])(losses.layer_norm(full), masks["target_idx"])
  pred, _, _ = model.predict(params, x, masks)
  idx, valid, grid = masks["target_idx"], masks["target_valid"], model.grid
  n = grid[0] * grid[1]
  maps, per_level = [], []
  for level in range(num_levels):
    if level == 0:
      err = losses.elementwise(loss_type, pred, target).mean(-1)  # (B, M, K)
      w = valid.astype(err.dtype)
      onehot = jax.nn.one_hot(idx, n, dtype=err.dtype) * w[..., None]  # (B, M, K, N)
      sums, counts = jnp.einsum("bmkn,bmk->bn", onehot, err), onehot.sum((1, 2))
      cell_map = jnp.where(counts > 0, sums / jnp.maximum(counts, 1.0), jnp.nan)  # (B, N)
    else:
      p, cell_valid = hierarchy.pool_to_level(pred, idx, valid, grid, level)
      t, _ = hierarchy.pool_to_level(target, idx, valid, grid, level)
      err = losses.elementwise(loss_type, p, t).mean(-1)  # (B, M, C)
      w = cell_valid.astype(err.dtype)
      cells = jnp.where(w.sum(1) > 0, (err * w).sum(1) / jnp.maximum(w.sum(1), 1.0), jnp.nan)  # (B, C)
      cell = 2**level
      rc = posemb.grid_positions(grid)
      cell_of_patch = (rc[:, 0] // cell) * -(-grid[1] // cell) + rc[:, 1] // cell
      cell_map = cells[:, cell_of_patch]  # (B, N)
    per_level.append((err * w).sum((1, 2)) / jnp.maximum(w.sum((1, 2)), 1.0))
    maps.append(cell_map.reshape(-1, *grid))
  return jnp.stack(maps), jnp.stack(per_level)


def prediction_errors(model, params, target_params, images_uint8, masks, num_levels, loss_type="smooth_l1"):
  """Per-level prediction error of the predictor against the (layer-normalised) target encoder.

  Returns maps (L, B, gh, gw): level 0 per target patch (mean over blocks covering it), level k
  per 2^k x 2^k cell painted over the whole cell; NaN where no target falls. And per_level (L, B):
  the mean over valid cells of all blocks, exactly the training loss's `loss_level_k` per example.
  """
  maps, per_level = _prediction_errors(
    model,
    params,
    target_params,
    jnp.asarray(images_uint8),
    jax.tree_util.tree_map(jnp.asarray, dict(masks)),
    int(num_levels),
    loss_type,
  )
  return np.asarray(maps), np.asarray(per_level)
