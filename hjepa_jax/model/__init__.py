"""Model definitions: ViT encoder, predictor and the composed H-JEPA model."""

from hjepa_jax.model.hjepa import HJEPA, ModelSpec, build_model
from hjepa_jax.model.predictor import Predictor
from hjepa_jax.model.vit import VARIANTS, BlockOptions, ViTEncoder, parse_variant
