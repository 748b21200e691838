"""Deterministic image transforms (TensorFlow ops on uint8 HWC images)."""

import tensorflow as tf


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
