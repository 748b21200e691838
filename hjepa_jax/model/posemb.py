"""Position encodings on the patch grid: fixed 2-D sin-cos (absolute) and 2-D RoPE (relative).

Both are functions of a token's (row, col) on the grid, so dropped tokens simply never appear and
kept tokens carry their true positions into the encoder and predictor.
"""

import jax.numpy as jnp
import numpy as np


def grid_positions(grid_hw):
  """(N, 2) int32 (row, col) of every patch in raster order."""
  h, w = grid_hw
  rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
  return np.stack([rows.ravel(), cols.ravel()], axis=-1).astype(np.int32)


def sincos_2d(grid_hw, width, temperature=10_000.0):
  """MAE/I-JEPA fixed 2-D sin-cos embedding, (N, width) float32; half the channels encode rows."""
  if width % 4:
    raise ValueError(f"sin-cos position embedding needs width divisible by 4, got {width}")
  pos = grid_positions(grid_hw).astype(np.float64)
  omega = 1.0 / temperature ** (np.arange(width // 4) / (width // 4))
  out = []
  for axis in (0, 1):
    angles = pos[:, axis : axis + 1] * omega[None]
    out += [np.sin(angles), np.cos(angles)]
  return np.concatenate(out, axis=1).astype(np.float32)


def apply_rope_2d(x, positions, base):
  """Rotates query/key channels by their 2-D grid position (RoPE-Mixed-free axial variant).

  x: (B, T, H, Dh); positions: (B, T, 2). The first half of Dh rotates with the row index, the
  second half with the column index, so q.k depends only on relative grid offsets.
  """
  dh = x.shape[-1]
  if dh % 4:
    raise ValueError(f"2-D RoPE needs head_dim divisible by 4, got {dh}")
  nf = dh // 4
  freqs = 1.0 / base ** (jnp.arange(nf, dtype=jnp.float32) / nf)
  pos = positions.astype(jnp.float32)
  angles = jnp.concatenate([pos[..., :1] * freqs, pos[..., 1:2] * freqs], axis=-1)  # (B, T, Dh/2)
  cos = jnp.cos(angles)[:, :, None, :].astype(x.dtype)
  sin = jnp.sin(angles)[:, :, None, :].astype(x.dtype)
  x1, x2 = x[..., : dh // 2], x[..., dh // 2 :]
  return jnp.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)
