"""Pure-functional Vision Transformer (flax.linen): encoder blocks shared by encoder and predictor.

No CLS token, pre-norm blocks, fixed sin-cos positions, final LayerNorm (I-JEPA). Tokens carry
their grid positions and a validity mask, so the same blocks run on a dropped-token subset
(context encoder), the full grid (target encoder) or context + mask tokens (predictor) with
static shapes; padded tokens are never attended to.
"""

import dataclasses
import flax.linen as nn
import jax
import jax.numpy as jnp

from hjepa_jax.model import posemb

# name -> (width, depth, num_heads); patch size comes after the slash: "S/16".
VARIANTS = {
  "mu": (64, 2, 2),
  "Ti": (192, 12, 3),
  "S": (384, 12, 6),
  "M": (512, 12, 8),
  "B": (768, 12, 12),
  "L": (1024, 24, 16),
  "H": (1280, 32, 16),
}

REMAT_POLICIES = (
  "none",
  "nothing_saveable",
  "everything_saveable",
  "dots_saveable",
  "dots_with_no_batch_dims_saveable",
  "checkpoint_dots",
  "checkpoint_dots_with_no_batch_dims",
)
ATTENTION_IMPLS = ("auto", "xla", "cudnn")
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def parse_variant(name):
  """ "S/16" -> dict(width=384, depth=12, num_heads=6, patch_size=16)."""
  base, sep, patch = name.partition("/")
  if base not in VARIANTS or not sep or not patch.isdigit():
    raise ValueError(
      f"unknown ViT variant {name!r}: expected NAME/PATCH with NAME in {sorted(VARIANTS)} (e.g. 'S/16', 'Ti/4')"
    )
  width, depth, heads = VARIANTS[base]
  return dict(width=width, depth=depth, num_heads=heads, patch_size=int(patch))


@dataclasses.dataclass(frozen=True)
class BlockOptions:
  """Switches shared by every transformer block (built from `config.model` by experiment.py)."""

  mlp_ratio: float
  fused_attention: bool  # jax.nn.dot_product_attention vs. a plain einsum softmax
  attention_impl: str  # "auto" lets jax/the plugin choose; "xla" | "cudnn" force one
  layerscale_init: float  # > 0 enables LayerScale (CaiT/DeiT-III) with this init value
  rope: bool  # 2-D rotary embedding of q/k on the patch grid
  rope_base: float
  remat: str  # per-block jax.checkpoint policy name, or "none"
  dtype: str  # compute dtype; params stay float32

  @property
  def compute_dtype(self):
    return DTYPES[self.dtype]


def attention(q, k, v, valid, *, fused, implementation):
  """Multi-head attention on (B, T, H, Dh); `valid` is a (B, S) key-validity mask, a (B, T, S)
  query-key mask, or None."""
  mask = None if valid is None else (valid[:, None, None, :] if valid.ndim == 2 else valid[:, None])
  if fused:
    impl = None if implementation == "auto" else implementation
    if impl == "cudnn" and mask is not None:
      # cuDNN takes the mask as a bias whose query and key lengths must both be whole (batch and heads may
      # broadcast): a (B, 1, 1, S) key mask fails with "Bias must have same seq length as QKV, got 1 and S".
      mask = jnp.broadcast_to(mask, (q.shape[0], 1, q.shape[1], k.shape[1]))
    return jax.nn.dot_product_attention(q, k, v, mask=mask, implementation=impl)
  scale = q.shape[-1] ** -0.5
  logits = jnp.einsum("bthd,bshd->bhts", q, k).astype(jnp.float32) * scale
  if mask is not None:
    logits = jnp.where(mask, logits, jnp.finfo(jnp.float32).min)
  weights = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
  return jnp.einsum("bhts,bshd->bthd", weights, v)


class Block(nn.Module):
  """Pre-norm transformer block with optional LayerScale and 2-D RoPE."""

  width: int
  num_heads: int
  opts: BlockOptions

  @nn.compact
  def __call__(self, x, positions, valid):
    o, dt = self.opts, self.opts.compute_dtype
    b, t, _ = x.shape
    head_dim = self.width // self.num_heads
    dense = lambda n, name: nn.Dense(n, dtype=dt, param_dtype=jnp.float32, name=name)

    y = nn.LayerNorm(epsilon=1e-6, dtype=dt, param_dtype=jnp.float32, name="norm1")(x)
    q, k, v = jnp.split(dense(3 * self.width, "qkv")(y).reshape(b, t, 3 * self.num_heads, head_dim), 3, axis=2)
    if o.rope:
      q = posemb.apply_rope_2d(q, positions, o.rope_base)
      k = posemb.apply_rope_2d(k, positions, o.rope_base)
    y = attention(q, k, v, valid, fused=o.fused_attention, implementation=o.attention_impl)
    y = dense(self.width, "proj")(y.reshape(b, t, self.width))
    x = x + self._scale(y, "ls1")

    y = nn.LayerNorm(epsilon=1e-6, dtype=dt, param_dtype=jnp.float32, name="norm2")(x)
    y = dense(int(self.width * o.mlp_ratio), "fc1")(y)
    y = dense(self.width, "fc2")(nn.gelu(y, approximate=False))
    return x + self._scale(y, "ls2")

  def _scale(self, y, name):
    if self.opts.layerscale_init <= 0:
      return y
    gamma = self.param(name, nn.initializers.constant(self.opts.layerscale_init), (self.width,), jnp.float32)
    return y * gamma.astype(y.dtype)


class Transformer(nn.Module):
  """`depth` blocks and a final LayerNorm; __call__ -> (output, [each block's output]).

  With a remat policy the blocks run as one `jax.lax.scan` over their stacked params with a
  `jax.checkpoint`ed body: the loop is what makes the policy save memory, since only the blocks'
  inputs (and what the policy keeps) live from the forward to the backward pass, and each block
  is recomputed inside the backward loop. Unrolled blocks with per-block checkpoints save nothing
  on XLA:CPU, whose scheduler hoists every recomputation next to the forward pass. Params keep one
  layout (block_0 ... block_{depth-1}) either way, so checkpoints do not depend on the policy.
  """

  width: int
  depth: int
  num_heads: int
  opts: BlockOptions

  @nn.compact
  def __call__(self, x, positions, valid):
    blocks = [Block(self.width, self.num_heads, self.opts, name=f"block_{i}") for i in range(self.depth)]
    # Unrolled when there is nothing to recompute, while params are created, or while flax captures
    # intermediates (tools/maps.py reads each block's qkv).
    if self.opts.remat == "none" or self.is_initializing() or self.is_mutable_collection("intermediates"):
      hidden = []
      for block in blocks:
        x = block(x, positions, valid)
        hidden.append(x)
    else:
      x, stacked = self._scan(x, positions, valid)
      hidden = list(stacked)
    x = nn.LayerNorm(epsilon=1e-6, dtype=self.opts.compute_dtype, param_dtype=jnp.float32, name="norm")(x)
    return x, hidden

  def _scan(self, x, positions, valid):
    params = self.variables["params"]
    stacked = jax.tree_util.tree_map(lambda *p: jnp.stack(p), *[params[f"block_{i}"] for i in range(self.depth)])
    block = Block(self.width, self.num_heads, self.opts)  # unbound: applied to each block's params

    def body(h, p):
      h = block.apply({"params": p}, h, positions, valid)
      return h, h

    policy = getattr(jax.checkpoint_policies, self.opts.remat)
    return jax.lax.scan(jax.checkpoint(body, policy=policy, prevent_cse=False), x, stacked)


class ViTEncoder(nn.Module):
  """Patch embedding + sin-cos positions + Transformer, optionally on a subset of tokens.

  __call__(images, token_idx=None, token_valid=None) -> (features (B, T, width), aux) where
  `token_idx` (B, T) selects which patches enter the transformer (dropped ones are never seen)
  and aux holds "blocks": every block's output, for evaluators that read intermediate layers.
  """

  width: int
  depth: int
  num_heads: int
  patch_size: int
  opts: BlockOptions

  @nn.compact
  def __call__(self, images, token_idx=None, token_valid=None):
    p = self.patch_size
    if images.shape[1] % p or images.shape[2] % p:
      raise ValueError(f"image size {images.shape[1:3]} is not divisible by patch size {p}")
    grid = (images.shape[1] // p, images.shape[2] // p)
    x = nn.Conv(
      self.width,
      (p, p),
      strides=(p, p),
      padding="VALID",
      dtype=self.opts.compute_dtype,
      param_dtype=jnp.float32,
      name="patch_embed",
    )(images.astype(self.opts.compute_dtype))
    b = x.shape[0]
    x = x.reshape(b, grid[0] * grid[1], self.width)
    x = x + jnp.asarray(posemb.sincos_2d(grid, self.width), x.dtype)
    positions = jnp.broadcast_to(jnp.asarray(posemb.grid_positions(grid)), (b, grid[0] * grid[1], 2))
    if token_idx is not None:
      x = jnp.take_along_axis(x, token_idx[..., None], axis=1)
      positions = jnp.take_along_axis(positions, token_idx[..., None], axis=1)
    x, hidden = Transformer(self.width, self.depth, self.num_heads, self.opts, name="transformer")(
      x, positions, token_valid
    )
    return x.astype(jnp.float32), {"blocks": hidden, "grid": grid}
