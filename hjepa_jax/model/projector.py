"""Projection head for view-level losses (SimCLR / VICReg style): Dense -> LayerNorm -> GELU -> Dense.

Losses between whole views act on this projection, not on the encoder output itself, so the
contrastive and VICReg terms shape a separate space and the encoder keeps JEPA's features.
"""

import flax.linen as nn
import jax.numpy as jnp


class Projector(nn.Module):
  hidden: int
  dim: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    x = nn.Dense(self.hidden, dtype=self.dtype, param_dtype=jnp.float32, name="fc1")(x)
    x = nn.gelu(nn.LayerNorm(epsilon=1e-6, dtype=self.dtype, param_dtype=jnp.float32, name="norm")(x))
    x = nn.Dense(self.dim, dtype=self.dtype, param_dtype=jnp.float32, name="fc2")(x)
    return x.astype(jnp.float32)
