"""Labelled evaluation data (k-NN, linear probe) as uint8 numpy arrays, no augmentation.

In-memory datasets are resized with JAX (the device path's bilinear weights), so evaluation runs where
TensorFlow is absent; image files are decoded with TensorFlow on the tf.data path, and decoded into memory
with PIL (then resized like the rest) on the device path (`local.load_source`).
"""

import logging
from typing import Any

import numpy as np

from hjepa_jax.data.folders import record_skipped
from hjepa_jax.data.local import load_source
from hjepa_jax.data.validate import DataError, check_data_config, check_labelled_split

_log = logging.getLogger(__name__)
_SUBSET_SEED = 0
_CHUNK = 256


def _subset(n: int, max_examples: int | None) -> np.ndarray:
  """All indices, or a fixed random subset (sorted) of max_examples of them.

  A random subset rather than the first k keeps class balance on datasets
  stored class by class (ImageNet folders).
  """
  if max_examples is None or max_examples >= n:
    return np.arange(n)
  rng = np.random.default_rng(np.random.SeedSequence([_SUBSET_SEED, n]))
  return np.sort(rng.permutation(n)[:max_examples])


def _resize_arrays(images: np.ndarray, size: int, crop_fraction: float) -> np.ndarray:
  """augment.center_resize (up to rounding) for a stack of same-sized images, done chunk-wise in JAX."""
  h, w = images.shape[1:3]
  scale = size / crop_fraction / min(h, w)
  new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
  top, left = (new_h - size) // 2, (new_w - size) // 2
  if (new_h, new_w) == (h, w):
    return np.array(images[:, top : top + size, left : left + size])
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  from hjepa_jax.data import device  # pylint: disable=g-import-not-at-top

  # Only the kept rows and columns of the resized image are computed.
  wy = device.axis_weights(0, h, h, new_h)[top : top + size]
  wx = device.axis_weights(0, w, w, new_w)[left : left + size]
  fn = jax.jit(
    lambda x: device.to_uint8(jnp.einsum("sh,nhwc,tw->nstc", wy, x.astype(jnp.float32), wx, precision="highest"))
  )
  out = np.empty((len(images), size, size, 3), np.uint8)
  for i in range(0, len(images), _CHUNK):
    chunk = images[i : i + _CHUNK]
    pad = _CHUNK - len(chunk)  # one compiled shape for every chunk
    out[i : i + _CHUNK] = np.asarray(fn(np.pad(chunk, ((0, pad), (0, 0), (0, 0), (0, 0)))))[: len(chunk)]
  return out


def _decode_files(paths: np.ndarray, size: int, crop_fraction: float, corrupt: str) -> tuple[np.ndarray, np.ndarray]:
  """Decoded images and the indices that decoded; unreadable files are dropped and recorded (or raise)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  from hjepa_jax.data import augment  # pylint: disable=g-import-not-at-top
  from hjepa_jax.data.sources import decode  # pylint: disable=g-import-not-at-top

  ds = tf.data.Dataset.from_tensor_slices((paths, np.arange(len(paths))))
  ds = ds.map(
    lambda p, i: (augment.center_resize(decode(p), size, crop_fraction), i),
    num_parallel_calls=tf.data.AUTOTUNE,
    deterministic=True,
  ).ignore_errors()
  out = np.empty((len(paths), size, size, 3), np.uint8)
  kept = []
  for images, idx in ds.batch(_CHUNK).as_numpy_iterator():
    out[len(kept) : len(kept) + len(idx)] = images
    kept.extend(idx.tolist())
  kept = np.asarray(kept, np.int64)
  bad = np.setdiff1d(np.arange(len(paths)), kept)
  if len(bad):
    record_skipped([str(paths[i]) for i in bad], corrupt)
    _log.warning("Dropped %d unreadable images of %d", len(bad), len(paths))
  return out[: len(kept)], kept


def load_labelled(
  name: str,
  split: str,
  data_cfg: Any,
  *,
  image_size: int | None = None,
  max_examples: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
  """uint8 images [N, S, S, 3] and int32 labels of a labelled split, deterministic.

  Images are resized (shorter side to S / data_cfg.eval_crop_fraction, then a
  centred S x S crop) with S = image_size or data_cfg.image_size. With
  max_examples, a fixed random subset of that size is returned, in dataset
  order. Unreadable image files are left out (see `skipped_files()`). All of
  `data_cfg` is checked first (`check_data_config`).
  """
  check_data_config(data_cfg)
  check_labelled_split(name, split)
  if max_examples is not None and max_examples < 1:
    raise DataError(f"max_examples={max_examples} must be positive (or None for the whole split).")
  size = int(image_size or data_cfg.image_size)
  crop_fraction = float(data_cfg.eval_crop_fraction)
  source = load_source(name, split, data_cfg)
  idx = _subset(len(source), max_examples)
  if source.in_memory:
    return _resize_arrays(source.images[idx], size, crop_fraction), source.labels[idx].astype(np.int32)
  images, kept = _decode_files(source.paths[idx], size, crop_fraction, data_cfg.corrupt_images)
  return images, source.labels[idx][kept].astype(np.int32)


def load_eval_data(data_cfg: Any, *, image_size: int | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """{"train": (images, labels), "test": (images, labels)} of data_cfg.eval_dataset,
  from splits eval_split_train / eval_split_test, each capped at eval_max_examples."""
  return {
    role: load_labelled(
      data_cfg.eval_dataset,
      split,
      data_cfg,
      image_size=image_size,
      max_examples=data_cfg.eval_max_examples,
    )
    for role, split in (("train", data_cfg.eval_split_train), ("test", data_cfg.eval_split_test))
  }
