"""Decoding image files inside tf.data without letting a corrupt file end a run.

A corrupt file must neither crash the pipeline nor shorten a batch: a shorter
batch would shift every later batch and break exact resumption. So example i
of a file source decodes the first readable file among i, i+1, ..., i+15
(modulo the source size) and reports how many it skipped. Which file stands in
is a pure function of i, so resumed runs see the same images. The skipped
files are collected here for the log and for `skipped_files()`.
"""

import logging
import threading

import numpy as np
import tensorflow as tf

_log = logging.getLogger(__name__)
MAX_CONSECUTIVE_BAD = 16

_lock = threading.Lock()
_skipped: dict[str, None] = {}  # insertion-ordered set of paths


def decode(path: tf.Tensor) -> tf.Tensor:
  """uint8 [H, W, 3] from a JPEG/PNG/GIF/BMP file (first frame of animations)."""
  image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
  return tf.ensure_shape(image, [None, None, 3])


def decode_with_fallback(paths: tf.Tensor, index: tf.Tensor) -> tf.data.Dataset:
  """One-element dataset (image, skipped): the first decodable file from `index` on.

  skipped is the number of unreadable files passed over, or -1 with a 1x1
  placeholder if all MAX_CONSECUTIVE_BAD candidates failed.
  """
  n = tf.cast(tf.shape(paths)[0], tf.int64)
  candidates = tf.data.Dataset.range(MAX_CONSECUTIVE_BAD)
  good = candidates.map(lambda t: (decode(paths[(index + t) % n]), tf.cast(t, tf.int32))).ignore_errors()
  give_up = tf.data.Dataset.from_tensors((tf.zeros([1, 1, 3], tf.uint8), tf.constant(-1, tf.int32)))
  return good.concatenate(give_up).take(1)


def record_skipped(paths: list[str]) -> None:
  """Remembers unreadable files and logs each the first time it is seen."""
  with _lock:
    new = [p for p in paths if p not in _skipped]
    for p in new:
      _skipped[p] = None
    total = len(_skipped)
  for p in new:
    _log.warning("Skipped unreadable image %s (%d unreadable so far)", p, total)


def skipped_files() -> list[str]:
  """Every unreadable image file skipped so far in this process, in order of discovery."""
  with _lock:
    return list(_skipped)


def skipped_paths(paths: np.ndarray, first: np.ndarray, skipped: np.ndarray) -> list[str]:
  """Paths of the files passed over for examples `first` that skipped `skipped` files."""
  out = []
  for i, k in zip(first.tolist(), skipped.tolist()):
    out.extend(str(paths[(i + t) % len(paths)]) for t in range(max(k, 0)))
  return out
