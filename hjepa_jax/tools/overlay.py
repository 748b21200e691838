"""Mask images: what a step hides and predicts, drawn on the images (pure numpy).

train.py logs them to TensorBoard and launch/visualize.py draws them; numpy only, so training pulls
in nothing for them.
"""

import numpy as np

# One colour per target block (cycled), readable on natural images and distinct from each other.
TARGET_COLOURS = np.array(
  [
    [230, 25, 75],
    [60, 180, 75],
    [0, 130, 200],
    [255, 225, 25],
    [145, 30, 180],
    [245, 130, 48],
    [70, 240, 240],
    [240, 50, 230],
  ],
  np.float32,
)
DROPPED, CONTEXT = -1, 0


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
  labels = patch_labels(masks, grid).repeat(ph, 1).repeat(pw, 2)  # (B, H, W) in patch units
  out = images.astype(np.float32)
  dropped = labels == DROPPED
  out[dropped] *= dim
  target = labels > 0
  colours = TARGET_COLOURS[(labels[target] - 1) % len(TARGET_COLOURS)]
  out[target] = (1 - alpha) * out[target] + alpha * colours
  return np.clip(np.round(out), 0, 255).astype(np.uint8)
