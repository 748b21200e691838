"""scikit-learn's bundled 8x8 digits as tiny RGB images, for smoke runs offline (no download, no TensorFlow)."""

import numpy as np

from hjepa_jax.data.catalog import DataError

_DIGITS_SIZE = 32  # 8x8 pixels are repeated 4x so crops and resizes have room.
_DIGITS_TEST_EVERY = 5  # every 5th example of each class (original order) is test


def load_digits(split: str) -> tuple[np.ndarray, np.ndarray]:
  """uint8 images [N, 32, 32, 3] and int32 labels.

  The split is stratified and independent of any RNG implementation: within
  each class, every fifth example in the original order goes to "test"
  (364 images), the rest to "train" (1433).
  """
  if split not in ("train", "test"):
    raise DataError(f"digits has splits 'train' and 'test', not {split!r}.")
  from sklearn.datasets import load_digits as sklearn_digits  # pylint: disable=g-import-not-at-top

  bunch = sklearn_digits()
  pixels = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)  # values are 0..16
  labels = bunch.target.astype(np.int32)
  rank_in_class = np.zeros(len(labels), dtype=np.int64)
  for c in np.unique(labels):
    idx = np.flatnonzero(labels == c)
    rank_in_class[idx] = np.arange(len(idx))
  is_test = rank_in_class % _DIGITS_TEST_EVERY == 0
  keep = is_test if split == "test" else ~is_test
  scale = _DIGITS_SIZE // pixels.shape[1]
  images = pixels[keep].repeat(scale, axis=1).repeat(scale, axis=2)
  return np.ascontiguousarray(np.repeat(images[..., None], 3, axis=-1)), labels[keep]
