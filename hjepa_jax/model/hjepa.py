"""The composed H-JEPA model: context/target encoder (one architecture) and predictor.

`HJEPA` is a plain, hashable description plus pure functions of explicit params; the target
encoder is the same `ViTEncoder` applied to EMA params, so no module state is hidden anywhere.
"""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from hjepa_jax.model.predictor import Predictor
from hjepa_jax.model.vit import BlockOptions, ViTEncoder, encoder_from_config

# Images arrive as uint8 (small host->device copies) and are normalised on device.
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def normalize_images(images):
  """uint8 (or [0, 255] float) RGB -> float32 normalised with ImageNet statistics."""
  x = images.astype(jnp.float32) / 255.0
  return (x - IMAGENET_MEAN) / IMAGENET_STD


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """Everything that fixes the architecture (all of it comes from `config.model`)."""
  image_size: int
  variant: str = "S/16"
  width: int = None
  depth: int = None
  num_heads: int = None
  patch_size: int = None
  block: BlockOptions = BlockOptions()
  predictor_width: int = 384
  predictor_depth: int = 6
  predictor_num_heads: int = 6


@dataclasses.dataclass(frozen=True)
class HJEPA:
  encoder: ViTEncoder
  predictor: Predictor
  image_size: int

  @property
  def grid(self):
    g = self.image_size // self.encoder.patch_size
    return (g, g)

  def init(self, rng):
    """float32 params {"encoder", "predictor"}, initialised under jit (eager init is slow)."""
    return jax.jit(self._init)(rng)

  def _init(self, rng):
    k_enc, k_pred = jax.random.split(rng)
    images = jnp.zeros((1, self.image_size, self.image_size, 3), jnp.float32)
    enc = self.encoder.init(k_enc, images)["params"]
    n = self.grid[0] * self.grid[1]
    ctx = jnp.zeros((1, n, self.encoder.width), jnp.float32)
    idx = jnp.arange(n, dtype=jnp.int32)[None]
    valid = jnp.ones((1, n), bool)
    pred = self.predictor.init(k_pred, ctx, idx, valid, idx[:, None], valid[:, None], self.grid)["params"]
    return {"encoder": enc, "predictor": pred}

  def encode(self, enc_params, images, token_idx=None, token_valid=None):
    """Encoder features (B, T, width) and aux (intermediate blocks); images already normalised."""
    return self.encoder.apply({"params": enc_params}, images, token_idx, token_valid)

  def predict(self, params, images, masks):
    """Context encoder on context tokens only, then predictor at every target position."""
    ctx, _ = self.encode(params["encoder"], images, masks["context_idx"], masks["context_valid"])
    pred = self.predictor.apply({"params": params["predictor"]}, ctx, masks["context_idx"], masks["context_valid"],
                                masks["target_idx"], masks["target_valid"], self.grid)
    return pred, ctx


def build_model(spec: ModelSpec) -> HJEPA:
  encoder = encoder_from_config(spec.variant, spec.block, width=spec.width, depth=spec.depth,
                                num_heads=spec.num_heads, patch_size=spec.patch_size)
  if spec.image_size % encoder.patch_size:
    raise ValueError(f"image_size {spec.image_size} is not divisible by patch size {encoder.patch_size}")
  if spec.predictor_width % spec.predictor_num_heads:
    raise ValueError(f"predictor width {spec.predictor_width} is not divisible by its num_heads "
                     f"{spec.predictor_num_heads}")
  predictor = Predictor(spec.predictor_width, spec.predictor_depth, spec.predictor_num_heads,
                        out_width=encoder.width, opts=spec.block)
  return HJEPA(encoder, predictor, spec.image_size)
