"""I-JEPA predictor: a narrow ViT that maps context tokens + positioned mask tokens to predictions.

Each target block is predicted in its own sequence [context tokens | mask tokens of that block]
(the I-JEPA layout), so blocks never see each other's mask tokens.
"""

import flax.linen as nn
import jax.numpy as jnp

from hjepa_jax.model import posemb
from hjepa_jax.model.vit import BlockOptions, Transformer


class Predictor(nn.Module):
  """__call__(ctx, ctx_idx, ctx_valid, tgt_idx, tgt_valid, grid) -> (B, M, Kt, out_width)."""

  width: int
  depth: int
  num_heads: int
  out_width: int
  opts: BlockOptions

  @nn.compact
  def __call__(self, ctx, ctx_idx, ctx_valid, tgt_idx, tgt_valid, grid):
    b, kc, _ = ctx.shape
    m, kt = tgt_idx.shape[1:]
    dt = self.opts.compute_dtype
    pos_table = jnp.asarray(posemb.sincos_2d(grid, self.width))
    grid_pos = jnp.asarray(posemb.grid_positions(grid))

    x = nn.Dense(self.width, dtype=dt, param_dtype=jnp.float32, name="embed")(ctx)
    x = x + pos_table[ctx_idx].astype(x.dtype)
    x = jnp.repeat(x, m, axis=0)  # (B*M, Kc, W): one sequence per block
    mask_token = self.param("mask_token", nn.initializers.normal(0.02), (1, 1, self.width), jnp.float32)
    tgt_flat = tgt_idx.reshape(b * m, kt)
    q = mask_token.astype(x.dtype) + pos_table[tgt_flat].astype(x.dtype)
    seq = jnp.concatenate([x, q], axis=1)
    valid = jnp.concatenate([jnp.repeat(ctx_valid, m, axis=0), tgt_valid.reshape(b * m, kt)], axis=1)
    positions = jnp.concatenate([jnp.repeat(grid_pos[ctx_idx], m, axis=0), grid_pos[tgt_flat]], axis=1)

    y, _ = Transformer(self.width, self.depth, self.num_heads, self.opts, name="transformer")(seq, positions, valid)
    y = nn.Dense(self.out_width, dtype=dt, param_dtype=jnp.float32, name="head")(y[:, kc:])
    return y.astype(jnp.float32).reshape(b, m, kt, self.out_width)
