"""Pictures of what a run does and learned: masks, attention, PCA of patch features, per-level errors.

The array helpers return numpy arrays (so train.py can log them to TensorBoard and tests can check
them); `mask_overlay` is pure numpy. The figure helpers import matplotlib lazily with the Agg
backend, so importing this module needs neither a display nor TensorFlow.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np

from hjepa_jax import hierarchy, losses
from hjepa_jax.model import posemb
from hjepa_jax.model.hjepa import normalize_images

# One colour per target block (cycled), readable on natural images and distinct from each other.
TARGET_COLOURS = np.array([[230, 25, 75], [60, 180, 75], [0, 130, 200], [255, 225, 25],
                           [145, 30, 180], [245, 130, 48], [70, 240, 240], [240, 50, 230]], np.float32)
DROPPED, CONTEXT = -1, 0


# ---------------------------------------------------------------------------------------------
# Masks (pure numpy).
# ---------------------------------------------------------------------------------------------


def patch_labels(masks, grid):
  """(B, gh, gw) int32: DROPPED (-1), CONTEXT (0) or k >= 1 for target block k (later blocks on top)."""
  ctx_idx, ctx_valid = np.asarray(masks["context_idx"]), np.asarray(masks["context_valid"])
  tgt_idx, tgt_valid = np.asarray(masks["target_idx"]), np.asarray(masks["target_valid"])
  b, n = ctx_idx.shape[0], grid[0] * grid[1]
  rows = np.arange(b)[:, None]
  # Padding slots write to a scratch column n, dropped afterwards.
  labels = np.full((b, n + 1), DROPPED, np.int32)
  labels[rows, np.where(ctx_valid, ctx_idx, n)] = CONTEXT
  for m in range(tgt_idx.shape[1]):
    labels[rows, np.where(tgt_valid[:, m], tgt_idx[:, m], n)] = m + 1
  return labels[:, :n].reshape(b, *grid)


def mask_overlay(images_uint8, masks, grid, alpha=0.55, dim=0.3):
  """uint8 (B, H, W, 3): context patches unchanged, target blocks tinted one colour per block,
  patches in neither (dropped) darkened to `dim` of their brightness."""
  images = np.asarray(images_uint8)
  b, h, w, _ = images.shape
  if h % grid[0] or w % grid[1]:
    raise ValueError(f"images of {h}x{w} pixels do not split into the {grid[0]}x{grid[1]} patch grid")
  ph, pw = h // grid[0], w // grid[1]
  labels = patch_labels(masks, grid).repeat(ph, 1).repeat(pw, 2)          # (B, H, W) in patch units
  out = images.astype(np.float32)
  dropped = labels == DROPPED
  out[dropped] *= dim
  target = labels > 0
  colours = TARGET_COLOURS[(labels[target] - 1) % len(TARGET_COLOURS)]
  out[target] = (1 - alpha) * out[target] + alpha * colours
  return np.clip(np.round(out), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# Attention.
# ---------------------------------------------------------------------------------------------


def _block_index(i, depth):
  if not -depth <= i < depth:
    raise ValueError(f"block {i} does not exist: the encoder has {depth} blocks (0..{depth - 1}, or -1 for the last)")
  return i % depth


@functools.partial(jax.jit, static_argnums=(0, 3))
def _attention_weights(encoder, enc_params, images, blocks):
  _, state = encoder.apply({"params": enc_params}, normalize_images(images), mutable=["intermediates"],
                           capture_intermediates=lambda mdl, _: mdl.name == "qkv")
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
    logits = jnp.einsum("bthd,bshd->bhts", q, k, precision=jax.lax.Precision.HIGHEST) * hd ** -0.5
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
  pred, _ = model.predict(params, x, masks)
  idx, valid, grid = masks["target_idx"], masks["target_valid"], model.grid
  n = grid[0] * grid[1]
  maps, per_level = [], []
  for level in range(num_levels):
    if level == 0:
      err = losses.elementwise(loss_type, pred, target).mean(-1)                        # (B, M, K)
      w = valid.astype(err.dtype)
      onehot = jax.nn.one_hot(idx, n, dtype=err.dtype) * w[..., None]                    # (B, M, K, N)
      sums, counts = jnp.einsum("bmkn,bmk->bn", onehot, err), onehot.sum((1, 2))
      cell_map = jnp.where(counts > 0, sums / jnp.maximum(counts, 1.0), jnp.nan)        # (B, N)
    else:
      p, cell_valid = hierarchy.pool_to_level(pred, idx, valid, grid, level)
      t, _ = hierarchy.pool_to_level(target, idx, valid, grid, level)
      err = losses.elementwise(loss_type, p, t).mean(-1)                                 # (B, M, C)
      w = cell_valid.astype(err.dtype)
      cells = jnp.where(w.sum(1) > 0, (err * w).sum(1) / jnp.maximum(w.sum(1), 1.0), jnp.nan)  # (B, C)
      cell = 2 ** level
      rc = posemb.grid_positions(grid)
      cell_of_patch = (rc[:, 0] // cell) * -(-grid[1] // cell) + rc[:, 1] // cell
      cell_map = cells[:, cell_of_patch]                                                 # (B, N)
    per_level.append((err * w).sum((1, 2)) / jnp.maximum(w.sum((1, 2)), 1.0))
    maps.append(cell_map.reshape(-1, *grid))
  return jnp.stack(maps), jnp.stack(per_level)


def prediction_errors(model, params, target_params, images_uint8, masks, num_levels, loss_type="smooth_l1"):
  """Per-level prediction error of the predictor against the (layer-normalised) target encoder.

  Returns maps (L, B, gh, gw): level 0 per target patch (mean over blocks covering it), level k
  per 2^k x 2^k cell painted over the whole cell; NaN where no target falls. And per_level (L, B):
  the mean over valid cells of all blocks, exactly the training loss's `loss_level_k` per example.
  """
  maps, per_level = _prediction_errors(model, params, target_params, jnp.asarray(images_uint8),
                                       jax.tree_util.tree_map(jnp.asarray, dict(masks)), int(num_levels), loss_type)
  return np.asarray(maps), np.asarray(per_level)


# ---------------------------------------------------------------------------------------------
# Figures (matplotlib, Agg).
# ---------------------------------------------------------------------------------------------


def _pyplot():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def save_panels(path, rows, row_labels=None, col_labels=None, title=None, cmap="viridis", row_scale=True,
                marks=None, size=1.6):
  """Saves a grid of panels: RGB(A) images (uint8 or [0, 1] floats, H x W x 3) or 2-D maps.

  Maps in one row share a colour scale (row_scale=True; each has its own colour bar otherwise)
  and NaN shows as grey. `marks[(r, c)] = (row, col)` draws a star on a map's cell.
  """
  plt = _pyplot()
  nr, nc = len(rows), max(len(r) for r in rows)
  fig, axes = plt.subplots(nr, nc, figsize=(size * nc + 0.8, size * nr + (0.5 if title else 0.2)), squeeze=False,
                           layout="constrained")
  colormap = plt.get_cmap(cmap).copy()
  colormap.set_bad("0.8")
  for r, row in enumerate(rows):
    maps = [np.asarray(p, np.float64) for p in row if p is not None and np.ndim(p) == 2]
    finite = np.concatenate([m[np.isfinite(m)] for m in maps]) if maps else np.zeros(0)
    vmin, vmax = (finite.min(), finite.max()) if row_scale and finite.size else (None, None)
    for c in range(nc):
      ax = axes[r, c]
      ax.set_xticks([])
      ax.set_yticks([])
      for side in ax.spines.values():
        side.set_visible(False)
      panel = row[c] if c < len(row) else None
      if panel is None:
        continue
      panel = np.asarray(panel)
      if panel.ndim == 2:
        im = ax.imshow(np.ma.masked_invalid(panel), cmap=colormap, vmin=vmin, vmax=vmax, interpolation="nearest")
        if not row_scale:
          fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03).ax.tick_params(labelsize=6)
        elif c == len(row) - 1:  # one bar for the row, beside it, so no panel shrinks
          fig.colorbar(im, ax=list(axes[r]), fraction=0.02, pad=0.01).ax.tick_params(labelsize=6)
      else:
        ax.imshow(panel, interpolation="nearest")
      if marks and (r, c) in marks:
        y, x = marks[(r, c)]
        ax.plot(x, y, marker="*", color="white", markersize=9, markeredgecolor="black")
      if col_labels and r == 0 and c < len(col_labels):
        ax.set_title(col_labels[c], fontsize=7)
      if row_labels and c == 0:
        ax.set_ylabel(row_labels[r], fontsize=7)
  if title:
    fig.suptitle(title, fontsize=9)
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def plot_curves(runs, tags, path, title=None, smooth=0):
  """One subplot per tag with every run overlaid; runs = {name: read_scalars(...) dict}. Tags that no
  run has are skipped; returns the tags drawn (nothing is written when none)."""
  tags = [t for t in tags if any(t in s and len(s[t][0]) for s in runs.values())]
  if not tags:
    return []
  plt = _pyplot()
  nc = min(3, len(tags))
  nr = -(-len(tags) // nc)
  fig, axes = plt.subplots(nr, nc, figsize=(4.2 * nc, 2.9 * nr), squeeze=False)
  for ax, tag in zip(axes.ravel(), tags):
    for name, scalars in runs.items():
      if tag not in scalars:
        continue
      steps, values = scalars[tag]
      if smooth > 1 and len(values) > smooth:
        values = np.convolve(values, np.ones(smooth) / smooth, mode="valid")
        steps = steps[smooth - 1:]
      ax.plot(steps, values, marker="o" if len(values) < 20 else None, markersize=3, label=name)
    ax.set_title(tag, fontsize=9)
    ax.set_xlabel("step", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    if len(runs) > 1:
      ax.legend(fontsize=7)
  for ax in axes.ravel()[len(tags):]:
    ax.set_visible(False)
  if title:
    fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return tags
