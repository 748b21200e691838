"""Images for TensorBoard drawn on the input images (pure numpy): masks (what a step hides and predicts) and
per-patch heat maps (attention).

train.py logs them and launch/visualize.py draws the masks; numpy only, so training pulls in nothing for them.
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


# Anchors of a dark-to-bright heat colour map (black, purple, red, orange, pale yellow), interpolated linearly.
HEAT_ANCHORS = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], np.float32)


def heat_overlay(images_uint8, maps, alpha=0.6):
  """uint8 (B, H, W, 3): each (gh, gw) patch-grid map scaled to [0, 1] per image (its min to its max), coloured
  dark to bright and blended over its image with weight `alpha`, one colour per patch."""
  images, maps = np.asarray(images_uint8), np.asarray(maps, np.float32)
  b, h, w, _ = images.shape
  gh, gw = maps.shape[1:]
  if h % gh or w % gw:
    raise ValueError(f"images of {h}x{w} pixels do not split into the {gh}x{gw} patch grid")
  lo, hi = maps.min((1, 2), keepdims=True), maps.max((1, 2), keepdims=True)
  unit = (maps - lo) / np.maximum(hi - lo, 1e-12)
  pos = unit * (len(HEAT_ANCHORS) - 1)
  i = np.minimum(pos.astype(np.int32), len(HEAT_ANCHORS) - 2)
  frac = (pos - i)[..., None]
  colours = (1 - frac) * HEAT_ANCHORS[i] + frac * HEAT_ANCHORS[i + 1]  # (B, gh, gw, 3)
  colours = colours.repeat(h // gh, 1).repeat(w // gw, 2)
  out = (1 - alpha) * images.astype(np.float32) + alpha * colours
  return np.clip(np.round(out), 0, 255).astype(np.uint8)


def for_display(images_uint8, beside=None, min_side=128):
  """uint8 (B, H', W', C) for TensorBoard: `beside` (the plain images) to the left of each image when given,
  then enlarged by whole-pixel repeats until the short side is at least `min_side` (a 32 px CIFAR image and
  its 4-pixel patches are otherwise too small to read)."""
  images = np.asarray(images_uint8)
  if beside is not None:
    images = np.concatenate([np.asarray(beside, images.dtype), images], axis=2)
  k = max(1, -(-min_side // min(images.shape[1:3])))
  return images.repeat(k, 1).repeat(k, 2)
