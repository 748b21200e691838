"""I-JEPA predictor: a narrow ViT that maps context tokens + positioned mask tokens to predictions.

Blocks never see each other's mask tokens, in either layout:
  * "per_block" (I-JEPA): one sequence [context | mask tokens of block m] per target block, all
    tokens attending to all; the context is processed once per block.
  * "joint": one sequence [context | mask tokens of every block] per example, with an attention mask
    in which context tokens see only context tokens and block m's mask tokens see the context and
    block m. The context is processed once, so a layer costs about (Kc + M*Kt) tokens instead of
    M*(Kc + Kt). It differs from I-JEPA in one way: context tokens no longer attend to mask tokens.
"""

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from hjepa_jax.model import posemb
from hjepa_jax.model.vit import BlockOptions, Transformer

LAYOUTS = ("per_block", "joint")


class Predictor(nn.Module):
  """__call__(ctx, ctx_idx, ctx_valid, tgt_idx, tgt_valid, grid) -> (B, M, Kt, out_width)."""

  width: int
  depth: int
  num_heads: int
  out_width: int
  opts: BlockOptions
  layout: str  # "per_block" | "joint" (module docstring)

  @nn.compact
  def __call__(self, ctx, ctx_idx, ctx_valid, tgt_idx, tgt_valid, grid):
    b, kc, _ = ctx.shape
    m, kt = tgt_idx.shape[1:]
    dt = self.opts.compute_dtype
    pos_table = jnp.asarray(posemb.sincos_2d(grid, self.width))
    grid_pos = jnp.asarray(posemb.grid_positions(grid))

    x = nn.Dense(self.width, dtype=dt, param_dtype=jnp.float32, name="embed")(ctx)
    x = x + pos_table[ctx_idx].astype(x.dtype)
    mask_token = self.param("mask_token", nn.initializers.normal(0.02), (1, 1, self.width), jnp.float32)
    q = mask_token.astype(x.dtype) + pos_table[tgt_idx].astype(x.dtype)  # (B, M, Kt, W)
    if self.layout == "joint":
      seq = jnp.concatenate([x, q.reshape(b, m * kt, self.width)], axis=1)
      key_valid = jnp.concatenate([ctx_valid, tgt_valid.reshape(b, m * kt)], axis=1)
      valid = jnp.asarray(_joint_mask(kc, m, kt))[None] & key_valid[:, None, :]  # (B, T, T)
      positions = jnp.concatenate([grid_pos[ctx_idx], grid_pos[tgt_idx].reshape(b, m * kt, 2)], axis=1)
    else:  # one sequence per block: (B*M, Kc + Kt)
      seq = jnp.concatenate([jnp.repeat(x, m, axis=0), q.reshape(b * m, kt, self.width)], axis=1)
      valid = jnp.concatenate([jnp.repeat(ctx_valid, m, axis=0), tgt_valid.reshape(b * m, kt)], axis=1)
      tgt_pos = grid_pos[tgt_idx].reshape(b * m, kt, 2)
      positions = jnp.concatenate([jnp.repeat(grid_pos[ctx_idx], m, axis=0), tgt_pos], axis=1)

    y, _ = Transformer(self.width, self.depth, self.num_heads, self.opts, name="transformer")(seq, positions, valid)
    y = nn.Dense(self.out_width, dtype=dt, param_dtype=jnp.float32, name="head")(y[:, kc:])
    return y.astype(jnp.float32).reshape(b, m, kt, self.out_width)


def _joint_mask(kc, m, kt):
  """(T, T) attention pattern of the joint layout: query t may attend to key s."""
  group = np.concatenate([np.full(kc, -1), np.repeat(np.arange(m), kt)])
  return (group[None, :] == -1) | (group[None, :] == group[:, None])
