"""What the augmentations of both input paths draw and cut, without TensorFlow or JAX.

The tf.data path (`augment.py`) and the device path (`device.py`) share these: the layout of an
example's uniforms, the DeiT-III constants, and the views of each image (`ViewConfig`), so the two
paths cannot drift apart in what a key means.
"""

import dataclasses
import math
from typing import Any

CROP_ATTEMPTS = 10  # torchvision's RandomResizedCrop tries 10 boxes, then falls back to a centre crop
JITTER = 0.3  # DeiT-III colour jitter for brightness, contrast and saturation
BLUR_SIGMA = (0.1, 2.0)  # DeiT-III blur sigma in pixels at 224 px; scaled with image_size
GRAY_WEIGHTS = (0.2989, 0.5870, 0.1140)  # tf.image.rgb_to_grayscale's luma weights

# Layout of an example's uniforms.
U_AREA = slice(0, CROP_ATTEMPTS)
U_RATIO = slice(CROP_ATTEMPTS, 2 * CROP_ATTEMPTS)
U_TOP, U_LEFT, U_FLIP, U_CHOICE, U_SIGMA = range(2 * CROP_ATTEMPTS, 2 * CROP_ATTEMPTS + 5)
U_JITTER = slice(2 * CROP_ATTEMPTS + 5, 2 * CROP_ATTEMPTS + 8)
NUM_UNIFORMS = 2 * CROP_ATTEMPTS + 8
# View indices: 0 and 1 are the global views, LOCAL_VIEW_BASE + j local view j
# (fixed, so the local views' draws do not depend on the number of global views).
MAX_GLOBAL_VIEWS = 2
LOCAL_VIEW_BASE = MAX_GLOBAL_VIEWS


def _floats(pair) -> tuple[float, float]:
  return tuple(float(v) for v in pair)


def blur_radius(strength: float, image_size: int) -> int:
  """Static half-width of the 3-Augment blur kernel: 3 sigma at the largest sigma, in pixels."""
  return max(1, min(image_size - 1, math.ceil(3 * BLUR_SIGMA[1] * strength * image_size / 224.0)))


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
  """How one kind of view is cut from an image (built by `ViewConfig.from_data_config`)."""

  image_size: int
  crop_scale: tuple[float, float]
  crop_ratio: tuple[float, float]
  horizontal_flip: bool
  deit3_strength: float


@dataclasses.dataclass(frozen=True)
class ViewConfig:
  """The views of each image the pretraining pipeline delivers: `num_global`
  global views (random-resized crops at global_cfg.image_size) and
  `num_local` small multi-crop views made with local_cfg."""

  global_cfg: AugmentConfig
  num_global: int
  local_cfg: AugmentConfig
  num_local: int

  @classmethod
  def from_data_config(cls, data_cfg: Any, num_global: int) -> "ViewConfig":
    """The views of a validated `config.data`: global views from the crop / flip / 3-Augment keys,
    local ones from data.multicrop (same aspect range, flips and 3-Augment)."""
    global_cfg = AugmentConfig(
      image_size=int(data_cfg.image_size),
      crop_scale=_floats(data_cfg.crop_scale),
      crop_ratio=_floats(data_cfg.crop_ratio),
      horizontal_flip=bool(data_cfg.horizontal_flip),
      deit3_strength=float(data_cfg.deit3_strength),
    )
    mc = data_cfg.multicrop
    local_cfg = dataclasses.replace(global_cfg, image_size=int(mc.local_size), crop_scale=_floats(mc.local_scale))
    return cls(global_cfg, int(num_global), local_cfg, int(mc.num_local))

  @property
  def view_ids(self) -> tuple[int, ...]:
    """The view index of each delivered view (what `view_uniforms` is called with)."""
    return tuple(range(self.num_global)) + tuple(LOCAL_VIEW_BASE + j for j in range(self.num_local))
