"""TensorFlow-side loading: TFDS datasets (cifar10, stl10, ImageNet-100 from imagenet2012) into memory, and decoding
image files without letting a corrupt one end a run. The TF-free loaders are in `archives.py`, `folders.py` and
`digits.py` (partly re-exported here); the `Source` cache and the dispatch from a dataset name to its loader
(`load_source`, `Source`, `clear_cache`) are in `local.py`, which calls the loaders here for TFDS datasets, so
this module does not import it.
"""

import logging
import socket
import threading

import numpy as np
import tensorflow as tf

from hjepa_jax.data import augment
from hjepa_jax.data.archives import _concat
from hjepa_jax.data.catalog import DataError
from hjepa_jax.data.folders import imagenet100_classes

_log = logging.getLogger(__name__)


# --- TFDS datasets (cifar10, stl10), loaded whole into memory as uint8 numpy -------------------
# CIFAR-10 and STL-10 fit in RAM (STL-10 "unlabelled+train" is 105k x 96 x 96 x 3
# = 2.9 GB; set data.max_stored_size to shrink it), and in-memory arrays are what
# makes exact resumption cheap.

_PROBE_HOST = ("storage.googleapis.com", 443)
_PROBE_TIMEOUT_S = 3.0


def network_available(host: tuple[str, int] = _PROBE_HOST, timeout: float = _PROBE_TIMEOUT_S) -> bool:
  """True if a TCP connection to `host` opens within `timeout` seconds.

  Runs in a daemon thread because DNS resolution ignores socket timeouts.
  """
  ok = []

  def probe():
    try:
      socket.create_connection(host, timeout=timeout).close()
      ok.append(True)
    except OSError:
      pass

  t = threading.Thread(target=probe, daemon=True)
  t.start()
  t.join(timeout)
  return bool(ok)


def _tfds_offline_options(name: str) -> str:
  local = ""
  if name == "cifar10":
    local = "use dataset 'cifar10_local' with --config.data.cifar10_dir=PATH to the python-pickle folder, "
  return (
    f"Offline options: {local}point --config.data.tfds_data_dir=DIR at a folder where {name} has been "
    f"prepared (e.g. copied from a machine that ran tfds.builder('{name}').download_and_prepare()), "
    "or set --config.data.download=True on a machine with network access."
  )


def _tfds_split(name: str, split: str, *, data_dir: str | None, download: bool):
  """(builder, tf.data.Dataset) of a prepared (or, with `download`, downloaded) TFDS split."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top (slow; only for TFDS datasets)

  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except Exception as e:  # noqa: BLE001 - TFDS raises many types here
    raise DataError(f"TFDS cannot create a builder for {name!r} (data_dir={data_dir}): {e}") from e
  if download:
    if not network_available():
      raise DataError(
        f"--config.data.download=True but there is no network (no connection to {_PROBE_HOST[0]} "
        f"within {_PROBE_TIMEOUT_S:.0f} s), so TFDS dataset {name!r} cannot be downloaded. "
        + _tfds_offline_options(name)
      )
    try:
      builder.download_and_prepare()
    except Exception as e:  # noqa: BLE001
      raise DataError(f"Downloading/preparing TFDS dataset {name!r} into {builder.data_dir} failed: {e}") from e
  try:
    return builder, builder.as_dataset(split=split, shuffle_files=False)
  except (AssertionError, FileNotFoundError) as e:
    raise DataError(
      f"TFDS dataset {name!r} is not prepared in {data_dir or 'the default TFDS data_dir'} "
      f"and --config.data.download is False. {_tfds_offline_options(name)}"
    ) from e
  except ValueError as e:  # unknown split
    raise DataError(f"TFDS dataset {name!r} has no split {split!r}: {e}") from e


def _stack(name: str, split: str, ds: tf.data.Dataset, size: int | None) -> tuple[np.ndarray, np.ndarray]:
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  images, labels = _collect(tfds.as_numpy(ds.batch(1024)), size)
  if not len(images):
    raise DataError(f"TFDS dataset {name!r} split {split!r} is empty.")
  _log.info("Loaded TFDS %s[%s]: %d images of %s", name, split, len(images), images.shape[1:])
  return images, labels


def load_tfds(
  name: str, split: str, *, data_dir: str | None, download: bool, max_size: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
  """uint8 images [N, H, W, 3] and int32 labels (-1 where unlabelled).

  Images larger than `max_size` are downscaled while streaming, so the
  full-resolution copy never sits in memory.
  """
  builder, ds = _tfds_split(name, split, data_dir=data_dir, download=download)
  ds = ds.map(
    lambda ex: (augment.shrink_to_max_size(ex["image"], max_size), tf.cast(ex["label"], tf.int32)),
    num_parallel_calls=tf.data.AUTOTUNE,
    deterministic=True,
  )
  return _stack(name, split, ds, _known_size(builder, split))


# ImageNet-100 from a TFDS-prepared imagenet2012 (for those who have one): the 100 classes kept, relabelled in
# the packaged list's order; images of mixed sizes stored as squares (shorter side resized, centre kept).
IMAGENET2012_SPLITS = {"train": "train", "val": "validation", "test": "validation"}


def load_imagenet100_tfds(
  split: str, *, data_dir: str | None, download: bool, size: int
) -> tuple[np.ndarray, np.ndarray]:
  """uint8 images [N, size, size, 3] and int32 labels 0..99 of split "train" or "val" ("test": val)."""
  parts = split.split("+")
  unknown = [p for p in parts if p not in IMAGENET2012_SPLITS]
  if unknown:
    raise DataError(f"imagenet100_tfds has splits train and val ('test' means val), not {unknown[0]!r}.")
  tfds_split = "+".join(dict.fromkeys(IMAGENET2012_SPLITS[p] for p in parts))
  builder, ds = _tfds_split("imagenet2012", tfds_split, data_dir=data_dir, download=download)
  order = {wnid: i for i, wnid in enumerate(imagenet100_classes())}
  names = builder.info.features["label"].names
  table = tf.constant([order.get(n, -1) for n in names], tf.int32)
  if int(tf.reduce_sum(tf.cast(table >= 0, tf.int32))) != 100:
    raise DataError(f"TFDS imagenet2012 in {builder.data_dir} lacks some of the 100 ImageNet-100 classes.")
  ds = ds.map(lambda ex: dict(ex, label=tf.gather(table, ex["label"])))
  ds = ds.filter(lambda ex: ex["label"] >= 0)
  ds = ds.map(
    lambda ex: (augment.center_resize(ex["image"], size), ex["label"]),
    num_parallel_calls=tf.data.AUTOTUNE,
    deterministic=True,
  )
  return _stack("imagenet100_tfds", split, ds, None)


def _known_size(builder, split: str) -> int | None:
  try:
    return int(builder.info.splits[split].num_examples) or None
  except Exception:  # noqa: BLE001 - unprepared or mocked builders know no sizes
    return None


def _collect(batches, size: int | None) -> tuple[np.ndarray, np.ndarray]:
  """Stacks batches, writing into one preallocated array when the size is known
  (avoids a second 2.9 GB copy for STL-10)."""
  if size is None:
    parts = list(batches)
    if not parts:
      return np.zeros((0, 1, 1, 3), np.uint8), np.zeros((0,), np.int32)
    return _concat(parts)
  images = labels = None
  n = 0
  for x, y in batches:
    if images is None:
      images = np.empty((size,) + x.shape[1:], np.uint8)
      labels = np.empty((size,), np.int32)
    if n + len(x) > size:
      raise DataError(f"TFDS yielded more than the {size} examples its metadata promised; re-prepare it.")
    images[n : n + len(x)], labels[n : n + len(y)] = x, y
    n += len(x)
  if images is None:
    return np.zeros((0, 1, 1, 3), np.uint8), np.zeros((0,), np.int32)
  return images[:n], labels[:n]


# --- Decoding image files inside tf.data ------------------------------------------------------
# A corrupt file must neither crash the pipeline nor shorten a batch: a shorter
# batch would shift every later batch and break exact resumption. So example i
# of a file source decodes the first readable file among i, i+1, ..., i+15
# (modulo the source size) and reports how many it skipped. Which file stands in
# is a pure function of i, so resumed runs see the same images. The skipped
# files are collected by `folders.record_skipped` for the log and `skipped_files()`.

MAX_CONSECUTIVE_BAD = 16


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


def skipped_paths(paths: np.ndarray, first: np.ndarray, skipped: np.ndarray) -> list[str]:
  """Paths of the files passed over for examples `first` that skipped `skipped` files."""
  out = []
  for i, k in zip(first.tolist(), skipped.tolist()):
    out.extend(str(paths[(i + t) % len(paths)]) for t in range(max(k, 0)))
  return out
