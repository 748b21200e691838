"""The composed H-JEPA model: context/target encoder (one architecture), predictor, optional heads.

`HJEPA` is a plain, hashable description plus pure functions of explicit params; the target
encoder is the same `ViTEncoder` applied to EMA params, so no module state is hidden anywhere.
Optional heads, each with its own params subtree: `fpn` refines the per-level predictions
top-down (model.fpn.*), `projector` maps pooled context embeddings of whole views into the space
of the contrastive / VICReg losses (loss.contrastive, loss.vicreg).
"""

import dataclasses
import functools
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from hjepa_jax import hierarchy
from hjepa_jax.model.fpn import FPN
from hjepa_jax.model.predictor import Predictor
from hjepa_jax.model.projector import Projector
from hjepa_jax.model.vit import BlockOptions, ViTEncoder

# Images arrive as uint8 (small host->device copies) and are normalised on device.
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def normalize_images(images):
  """uint8 (or [0, 255] float) RGB -> float32 normalised with ImageNet statistics."""
  x = images.astype(jnp.float32) / 255.0
  return (x - IMAGENET_MEAN) / IMAGENET_STD


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """Everything that fixes the architecture; experiment.model_spec builds it from `config.model`."""

  image_size: int
  width: int
  depth: int
  num_heads: int
  patch_size: int
  block: BlockOptions
  predictor_width: int
  predictor_depth: int
  predictor_num_heads: int
  predictor_layout: str  # per_block | joint (model/predictor.py)
  fpn_levels: int  # 0: no FPN; else the number of hierarchy levels it spans
  fpn_feature_dim: int
  fpn_fusion: str
  projector_hidden: int  # 0: no projector (no view-level loss)
  projector_dim: int
  # The deep hierarchy design (levels.py): the encoder block (1-based) each level reads, level 0 first, and
  # the depth of the predictor of each level >= 1; () for the other designs (no level predictors).
  level_blocks: tuple = ()
  level_predictor_depth: int = 1


@dataclasses.dataclass(frozen=True)
class HJEPA:
  encoder: ViTEncoder
  predictor: Predictor
  image_size: int
  fpn: Optional[FPN] = None
  projector: Optional[Projector] = None
  level_predictors: tuple = ()  # deep design: the predictor of level k is level_predictors[k - 1]
  level_blocks: tuple = ()  # deep design: the encoder block (1-based) level k reads, level 0 first

  @property
  def grid(self):
    g = self.image_size // self.encoder.patch_size
    return (g, g)

  def init(self, rng):
    """float32 params {"encoder", "predictor"[, "fpn", "projector"]}, initialised under jit.

    Eager init is slow; the jitted init is cached per model (HJEPA is hashable), so calling it
    again, e.g. for a random-init baseline, does not compile again.
    """
    return _jitted_init(self, rng)

  def _init(self, rng):
    k_enc, k_pred = jax.random.split(rng)
    images = jnp.zeros((1, self.image_size, self.image_size, 3), jnp.float32)
    enc = self.encoder.init(k_enc, images)["params"]
    n = self.grid[0] * self.grid[1]
    ctx = jnp.zeros((1, n, self.encoder.width), jnp.float32)
    idx = jnp.arange(n, dtype=jnp.int32)[None]
    valid = jnp.ones((1, n), bool)
    pred = self.predictor.init(k_pred, ctx, idx, valid, idx[:, None], valid[:, None], self.grid)["params"]
    params = {"encoder": enc, "predictor": pred}
    if self.level_predictors:  # keys folded from k_pred: the encoder and predictor init stay those of any design
      params["levels"] = {
        f"level_{k}": p.init(
          jax.random.fold_in(k_pred, 100 + k), ctx, idx, valid, idx[:, None], valid[:, None], self.grid
        )["params"]
        for k, p in enumerate(self.level_predictors, start=1)
      }
    if self.fpn is not None:
      levels = [jnp.zeros((1, 1, n, self.encoder.width), jnp.float32)]
      levels += [
        jnp.zeros((1, 1, hierarchy.num_cells(self.grid, k), self.encoder.width), jnp.float32)
        for k in range(1, self.fpn.num_levels)
      ]
      params["fpn"] = self.fpn.init(jax.random.fold_in(k_pred, 1), levels, idx[:, None], self.grid)["params"]
    if self.projector is not None:
      params["projector"] = self.projector.init(
        jax.random.fold_in(k_pred, 2), jnp.zeros((1, self.encoder.width), jnp.float32)
      )["params"]
    return params

  def encode(self, enc_params, images, token_idx=None, token_valid=None):
    """Encoder features (B, T, width) and aux (intermediate blocks); images already normalised."""
    return self.encoder.apply({"params": enc_params}, images, token_idx, token_valid)

  def predict(self, params, images, masks):
    """Context encoder on context tokens only, then predictor at every target position: (pred, ctx, ctx aux)."""
    ctx, aux = self.encode(params["encoder"], images, masks["context_idx"], masks["context_valid"])
    return self._predict_with(self.predictor, params["predictor"], ctx, masks), ctx, aux

  def predict_level(self, params, level, ctx, masks):
    """Level `level`'s own predictor (deep design) on context tokens `ctx` at masks' target positions."""
    return self._predict_with(self.level_predictors[level - 1], params["levels"][f"level_{level}"], ctx, masks)

  def _predict_with(self, predictor, pred_params, ctx, masks):
    return predictor.apply(
      {"params": pred_params},
      ctx,
      masks["context_idx"],
      masks["context_valid"],
      masks["target_idx"],
      masks["target_valid"],
      self.grid,
    )

  def refine_levels(self, params, levels, idx):
    """Per-level predictions plus the FPN's top-down correction (identity without an FPN).

    Residual, so the predictor's full-width prediction is kept and the pyramid adds coarse context.
    """
    if self.fpn is None:
      return levels
    refined = self.fpn.apply({"params": params["fpn"]}, levels, idx, self.grid)
    return [p + r for p, r in zip(levels, refined)]

  def embed_view(self, params, images, token_idx=None, token_valid=None):
    """Projected mean context-encoder token of each image (B, projector_dim), for view-level losses."""
    tokens, _ = self.encode(params["encoder"], images, token_idx, token_valid)
    return self.project(params, masked_mean(tokens, token_valid))

  def project(self, params, pooled):
    return self.projector.apply({"params": params["projector"]}, pooled)


def masked_mean(tokens, valid=None):
  """Mean over the token axis of (B, T, D), counting only valid tokens."""
  if valid is None:
    return tokens.mean(1)
  w = valid.astype(tokens.dtype)[..., None]
  return (tokens * w).sum(1) / jnp.maximum(w.sum(1), 1.0)


@functools.partial(jax.jit, static_argnums=0)
def _jitted_init(model, rng):
  return model._init(rng)  # pylint: disable=protected-access


def build_model(spec: ModelSpec) -> HJEPA:
  """HJEPA from a ModelSpec whose values experiment.model_spec has checked."""
  encoder = ViTEncoder(spec.width, spec.depth, spec.num_heads, spec.patch_size, opts=spec.block)
  predictor = Predictor(
    spec.predictor_width,
    spec.predictor_depth,
    spec.predictor_num_heads,
    out_width=encoder.width,
    opts=spec.block,
    layout=spec.predictor_layout,
  )
  fpn = None
  if spec.fpn_levels:
    fpn = FPN(
      num_levels=spec.fpn_levels,
      feature_dim=spec.fpn_feature_dim,
      fusion=spec.fpn_fusion,
      out_dim=encoder.width,
      dtype=spec.block.compute_dtype,
    )
  projector = None
  if spec.projector_hidden:
    projector = Projector(spec.projector_hidden, spec.projector_dim, dtype=spec.block.compute_dtype)
  level_predictors = tuple(predictor.clone(depth=spec.level_predictor_depth) for _ in spec.level_blocks[1:])
  return HJEPA(encoder, predictor, spec.image_size, fpn, projector, level_predictors, tuple(spec.level_blocks))
