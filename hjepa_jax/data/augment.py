"""TensorFlow image ops on uint8 HWC images: resizing, and the pretraining augmentations.

Resizing (`resize`, `shrink_to_max_size`, `center_resize`) is deterministic and also serves loading
and evaluation. The augmentations are stateless random ops: all randomness of an example is a vector
of uniforms that is a pure function of (seed, epoch, position in the epoch's order), so an augmented
batch can be recomputed bit for bit after a restart, whatever the batch size or host split. Each
augmentation step owns fixed entries of that vector, so switching one step on or off leaves the draws
of the others intact.

The uniforms, and for in-memory images the crop boxes, are computed for a
whole chunk of examples at once: tf.data pays a per-op cost per call, and
doing this work per example made it the bottleneck at 32 px.

An image can be seen through several views (`ViewConfig`): view 0 is the
global view every run has, view 1 an optional second global view, and views
LOCAL_VIEW_BASE + j the small multi-crop views. View v draws its uniforms from
the same tables' seeds folded with v (view 0 is not folded), so each view's
draws are fixed by (seed, epoch, position, v) and switching views on or off
leaves the others' draws intact.

Everything here receives values `validate.check_data_config` has already checked.
"""

import math
from collections.abc import Sequence

import tensorflow as tf

from hjepa_jax.data.views import (  # noqa: F401  (AugmentConfig, ViewConfig, NUM_UNIFORMS, ...: this module's API)
  BLUR_SIGMA,
  JITTER,
  LOCAL_VIEW_BASE,
  MAX_GLOBAL_VIEWS,
  NUM_UNIFORMS,
  U_AREA,
  U_CHOICE,
  U_FLIP,
  U_JITTER,
  U_LEFT,
  U_RATIO,
  U_SIGMA,
  U_TOP,
  AugmentConfig,
  ViewConfig,
  blur_radius,
)


# --- Deterministic resizing (pretraining, loading and evaluation) -----------------------------


def to_uint8(image: tf.Tensor) -> tf.Tensor:
  """Rounds and clips a float image on the 0-255 scale to uint8."""
  return tf.saturate_cast(tf.round(image), tf.uint8)


def resize(image: tf.Tensor, height, width) -> tf.Tensor:
  """Bilinear resize of a uint8 or float image ([H, W, C] or [N, H, W, C]) to float32.

  Shrinking is antialiased (96 px STL-10 or ImageNet down to 32 px would
  alias otherwise); enlarging uses plain bilinear interpolation, which is
  what antialiasing reduces to there but 3-4x cheaper.
  """
  image = tf.cast(image, tf.float32)
  size = tf.stack([height, width])
  in_size = tf.shape(image)[-3:-1]
  return tf.cond(
    tf.reduce_any(in_size > size),
    lambda: tf.image.resize(image, size, method="bilinear", antialias=True),
    lambda: tf.image.resize(image, size, method="bilinear", antialias=False),
  )


def shrink_to_max_size(image: tf.Tensor, max_size: int | None) -> tf.Tensor:
  """Downscales so neither side exceeds `max_size` (aspect kept); smaller images pass unchanged."""
  if max_size is None:
    return image
  shape = tf.shape(image)
  h, w = shape[0], shape[1]
  scale = tf.minimum(1.0, max_size / tf.cast(tf.maximum(h, w), tf.float32))
  new_h = tf.maximum(1, tf.cast(tf.round(tf.cast(h, tf.float32) * scale), tf.int32))
  new_w = tf.maximum(1, tf.cast(tf.round(tf.cast(w, tf.float32) * scale), tf.int32))
  return tf.cond(
    scale < 1.0,
    lambda: to_uint8(resize(image, new_h, new_w)),
    lambda: image,
  )


def center_resize(image: tf.Tensor, size: int, crop_fraction: float = 1.0) -> tf.Tensor:
  """Evaluation view: shorter side to size / crop_fraction, then a centred size x size crop (uint8)."""
  shape = tf.shape(image)
  h, w = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
  short = size / crop_fraction
  scale = short / tf.minimum(h, w)
  new_h = tf.maximum(size, tf.cast(tf.round(h * scale), tf.int32))
  new_w = tf.maximum(size, tf.cast(tf.round(w * scale), tf.int32))
  unchanged = tf.logical_and(tf.equal(new_h, shape[0]), tf.equal(new_w, shape[1]))
  resized = tf.cond(unchanged, lambda: image, lambda: to_uint8(resize(image, new_h, new_w)))
  top = (new_h - size) // 2
  left = (new_w - size) // 2
  out = resized[top : top + size, left : left + size]
  return tf.ensure_shape(out, [size, size, 3])


# --- Random augmentations --------------------------------------------------------------------

# Uniforms come in seeded tables of _BLOCK consecutive positions of an epoch.
_BLOCK = 256


def uniforms(seed: int, epoch: tf.Tensor, offset: tf.Tensor) -> tf.Tensor:
  """float32 [n, NUM_UNIFORMS]: the random draws of view 0 of the examples at (epoch[i], offset[i]).

  Position p of epoch e reads row p % 256 of the table drawn with the
  stateless seed fold_in([seed, e], p // 256); a chunk of nearby positions
  touches only a couple of tables.
  """
  return view_uniforms(seed, epoch, offset, (0,))[:, 0]


def view_uniforms(seed: int, epoch: tf.Tensor, offset: tf.Tensor, views: Sequence[int]) -> tf.Tensor:
  """float32 [n, len(views), NUM_UNIFORMS]: the draws of the given views of each example.

  View 0 reads the tables `uniforms` describes; view v > 0 reads tables drawn
  with that table's seed folded with v.
  """
  views = tuple(int(v) for v in views)
  epoch = tf.cast(epoch, tf.int64)
  offset = tf.cast(offset, tf.int64)
  block_ids = tf.stack([epoch, offset // _BLOCK], axis=1)
  # Unique (epoch, block) pairs; epochs and blocks stay far below 2**31.
  packed = block_ids[:, 0] * (2**31) + block_ids[:, 1]
  unique, row_of = tf.unique(packed)
  seed_word = tf.constant(seed & (2**63 - 1), tf.int64)

  def table(pair):
    key = tf.random.experimental.stateless_fold_in(tf.stack([seed_word, pair // (2**31)]), pair % (2**31))
    keys = [tf.random.experimental.stateless_fold_in(key, v) if v else key for v in views]
    return tf.stack([tf.random.stateless_uniform([_BLOCK, NUM_UNIFORMS], k) for k in keys], axis=1)

  shape = [-1, _BLOCK, len(views), NUM_UNIFORMS]
  tables = tf.reshape(tf.map_fn(table, unique, fn_output_signature=tf.float32), shape)
  return tf.gather_nd(tables, tf.stack([tf.cast(row_of, tf.int64), offset % _BLOCK], axis=1))


def _lerp(u, lo: float, hi: float):
  return lo + (hi - lo) * u


def crop_boxes(u: tf.Tensor, height, width, cfg: AugmentConfig) -> tf.Tensor:
  """int32 [n, 4] Inception-style boxes (top, left, h, w) for uniforms u [n, NUM_UNIFORMS].

  Area fraction in cfg.crop_scale, log-uniform aspect ratio in cfg.crop_ratio;
  like torchvision, 10 tries, then the largest centred box within the ratio.
  height and width are scalars or [n].
  """
  scale, ratio = cfg.crop_scale, cfg.crop_ratio
  h = tf.cast(height, tf.float32) * tf.ones_like(u[:, 0])
  w = tf.cast(width, tf.float32) * tf.ones_like(u[:, 0])
  target = (h * w)[:, None] * _lerp(u[:, U_AREA], *scale)
  aspect = tf.exp(_lerp(u[:, U_RATIO], math.log(ratio[0]), math.log(ratio[1])))
  cw = tf.round(tf.sqrt(target * aspect))
  ch = tf.round(tf.sqrt(target / aspect))
  valid = (cw > 0) & (cw <= w[:, None]) & (ch > 0) & (ch <= h[:, None])
  first = tf.argmax(tf.cast(valid, tf.int32), axis=1, output_type=tf.int32)[:, None]
  found = tf.reduce_any(valid, axis=1)
  in_ratio = w / h
  fw = tf.where(in_ratio > ratio[1], tf.round(h * ratio[1]), w)
  fh = tf.where(in_ratio < ratio[0], tf.round(w / ratio[0]), h)
  ch = tf.where(found, tf.gather(ch, first, batch_dims=1)[:, 0], fh)
  cw = tf.where(found, tf.gather(cw, first, batch_dims=1)[:, 0], fw)
  top = tf.where(found, tf.floor(u[:, U_TOP] * (h - ch + 1)), tf.floor((h - ch) / 2))
  left = tf.where(found, tf.floor(u[:, U_LEFT] * (w - cw + 1)), tf.floor((w - cw) / 2))
  box = tf.stack([tf.minimum(top, h - ch), tf.minimum(left, w - cw), ch, cw], axis=1)
  return tf.cast(box, tf.int32)


def _grayscale(image):
  return tf.image.rgb_to_grayscale(image)  # [H, W, 1], broadcasts against RGB


def _gaussian_blur(image, sigma, radius: int, size: int):
  """Separable Gaussian blur with reflected borders, as weighted sums of shifted
  copies (TensorFlow's CPU depthwise convolution is ~5x slower for this)."""
  x = tf.range(-radius, radius + 1, dtype=tf.float32)
  k = tf.exp(-(x**2) / (2.0 * sigma**2))
  k = k / tf.reduce_sum(k)
  padded = tf.pad(image, [[radius, radius], [radius, radius], [0, 0]], mode="REFLECT")
  rows = tf.add_n([k[t] * padded[t : t + size] for t in range(2 * radius + 1)])
  return tf.add_n([k[t] * rows[:, t : t + size] for t in range(2 * radius + 1)])


def _three_augment(image, u, cfg: AugmentConfig):
  """DeiT-III 3-Augment scaled by strength s: one of grayscale / solarize / blur,
  blended in with weight min(s, 1), then brightness, contrast and saturation
  jitter with factors in [1 - 0.3 s, 1 + 0.3 s] (fixed order)."""
  s = cfg.deit3_strength
  blend = min(s, 1.0)
  pixel_scale = cfg.image_size / 224.0
  sigma = _lerp(u[U_SIGMA], *BLUR_SIGMA) * s * pixel_scale
  radius = blur_radius(s, cfg.image_size)
  choice = tf.minimum(tf.cast(tf.floor(u[U_CHOICE] * 3.0), tf.int32), 2)
  changed = tf.switch_case(
    choice,
    [
      lambda: _grayscale(image) + tf.zeros_like(image),
      lambda: tf.where(image >= 128.0, 255.0 - image, image),
      lambda: _gaussian_blur(image, tf.maximum(sigma, 1e-3), radius, cfg.image_size),
    ],
  )
  image = image + blend * (changed - image)
  f = tf.maximum(0.0, _lerp(u[U_JITTER], 1.0 - JITTER * s, 1.0 + JITTER * s))
  image = tf.clip_by_value(image * f[0], 0.0, 255.0)
  mean = tf.reduce_mean(_grayscale(image))
  image = tf.clip_by_value(mean + (image - mean) * f[1], 0.0, 255.0)
  gray = _grayscale(image)
  return tf.clip_by_value(gray + (image - gray) * f[2], 0.0, 255.0)


def apply(image: tf.Tensor, u: tf.Tensor, box: tf.Tensor, cfg: AugmentConfig) -> tf.Tensor:
  """uint8 [H, W, 3] -> uint8 [S, S, 3]: crop `box`, resize to S, then flip / 3-Augment per u."""
  crop = image[box[0] : box[0] + box[2], box[1] : box[1] + box[3]]
  out = resize(crop, cfg.image_size, cfg.image_size)
  if cfg.horizontal_flip:
    out = tf.cond(u[U_FLIP] < 0.5, lambda: tf.reverse(out, axis=[1]), lambda: out)
  if cfg.deit3_strength > 0:
    out = _three_augment(out, u, cfg)
  return tf.ensure_shape(to_uint8(out), [cfg.image_size, cfg.image_size, 3])


def augment(image: tf.Tensor, u: tf.Tensor, cfg: AugmentConfig) -> tf.Tensor:
  """One example: uint8 [H, W, 3] and its uniforms [NUM_UNIFORMS] -> uint8 [S, S, 3]."""
  shape = tf.shape(image)
  return apply(image, u, crop_boxes(u[None], shape[0], shape[1], cfg)[0], cfg)


def view_boxes(u: tf.Tensor, height, width, views: ViewConfig) -> tf.Tensor:
  """int32 [n, V, 4] crop boxes for the views' uniforms u [n, V, NUM_UNIFORMS] (height, width: scalars).

  Each global view's boxes come from their own `crop_boxes` call, so view 0's
  are computed exactly as with a single view; the local views share one call.
  """
  boxes = [crop_boxes(u[:, v], height, width, views.global_cfg)[:, None] for v in range(views.num_global)]
  if views.num_local:
    local_u = tf.reshape(u[:, views.num_global :], [-1, NUM_UNIFORMS])
    local = crop_boxes(local_u, height, width, views.local_cfg)
    boxes.append(tf.reshape(local, [-1, views.num_local, 4]))
  return tf.concat(boxes, axis=1) if len(boxes) > 1 else boxes[0]


def apply_views(image: tf.Tensor, u: tf.Tensor, box: tf.Tensor, views: ViewConfig) -> dict[str, tf.Tensor]:
  """One image uint8 [H, W, 3], its uniforms [V, NUM_UNIFORMS] and boxes [V, 4] -> its views:
  "image" uint8 [S, S, 3], "image_view2" (second global view) uint8 [S, S, 3], "local" uint8 [L, s, s, 3]."""
  g = views.num_global
  out = {"image": apply(image, u[0], box[0], views.global_cfg)}
  if g > 1:
    out["image_view2"] = apply(image, u[1], box[1], views.global_cfg)
  if views.num_local:
    # One traced body for all local views (unrolling them multiplied the pipeline's set-up time).
    s = views.local_cfg.image_size
    out["local"] = tf.map_fn(
      lambda ub: apply(image, ub[0], ub[1], views.local_cfg),
      (u[g:], box[g:]),
      fn_output_signature=tf.TensorSpec([s, s, 3], tf.uint8),
    )
  return out


def augment_views(image: tf.Tensor, u: tf.Tensor, views: ViewConfig) -> dict[str, tf.Tensor]:
  """`apply_views` for one decoded image of any size: boxes drawn for its shape, then every view cropped."""
  shape = tf.shape(image)
  return apply_views(image, u, view_boxes(u[None], shape[0], shape[1], views)[0], views)
