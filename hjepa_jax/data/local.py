"""Where examples come from, without TensorFlow: the `Source` cache and the dispatch from a dataset name to
its loader (official release files in `archives.py`, image folders in `folders.py`, TFDS in `sources.py`,
scikit-learn's digits in `digits.py`). `sources.py` (TensorFlow) is below this module: it never imports it.

A source is either images held in memory (CIFAR, STL-10, digits) or a list of image files (image folders
on the tf.data path); both are addressed by example index, which is what lets the pipelines start
anywhere in their order. On the device path (data.pipeline=device) image folders are decoded once into
memory too, with PIL. Loaded sources are cached per process so pretraining and evaluation share one
copy. Nothing here waits on the network: a dataset that is not there fails within seconds, saying where
it was looked for and what the offline alternatives are.

Everything but TFDS datasets and shrinking stored images (data.max_stored_size) loads without
TensorFlow, so the device input path (`device.py`) and evaluation run where TensorFlow is absent.
"""

import dataclasses
import functools
import logging
from typing import Any

import numpy as np

from hjepa_jax import platform
from hjepa_jax.data import archives, folders
from hjepa_jax.data.archives import _concat
from hjepa_jax.data.catalog import FOLDER_NAMES, TFDS_NAMES, DataError
from hjepa_jax.data.digits import load_digits
from hjepa_jax.data.validate import DatasetSpec, check_name

_log = logging.getLogger(__name__)


# --- Sources and their cache -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class Source:
  """The examples of one dataset split, by index: uint8 `images` [N, H, W, 3] held in memory, or image
  file `paths` [N] decoded on the fly (the other one None), and int32 `labels` [N] (-1: unlabelled).

  The arrays are made read-only: cached sources are shared between callers.
  """

  description: str
  labels: np.ndarray
  images: np.ndarray | None
  paths: np.ndarray | None

  def __post_init__(self):
    for array in (self.labels, self.images, self.paths):
      if array is not None:
        array.flags.writeable = False

  @property
  def in_memory(self) -> bool:
    return self.images is not None

  def __len__(self) -> int:
    return len(self.labels)


def _shrink(images: np.ndarray, max_size: int | None) -> np.ndarray:
  """Downscales same-sized in-memory images so neither side exceeds max_size."""
  h, w = images.shape[1:3]
  if max_size is None or max(h, w) <= max_size:
    return images
  scale = max_size / max(h, w)
  size = (max(1, round(h * scale)), max(1, round(w * scale)))
  from hjepa_jax.data import augment  # pylint: disable=g-import-not-at-top  (TensorFlow, only when shrinking)

  chunks = [augment.to_uint8(augment.resize(images[i : i + 1024], *size)).numpy() for i in range(0, len(images), 1024)]
  return np.concatenate(chunks)


@functools.lru_cache(maxsize=8)
def _load_cached(name: str, split: str, where: tuple, max_size: int | None) -> Source:
  """`where`: what locates the data, per kind of dataset (see `load_source`); part of the cache key."""
  description = f"{name}[{split}]"
  parts = split.split("+")
  if name in TFDS_NAMES:
    from hjepa_jax.data import sources  # pylint: disable=g-import-not-at-top  (TensorFlow)

    data_dir, download, size = where
    if name == "imagenet100_tfds":
      images, labels = sources.load_imagenet100_tfds(split, data_dir=data_dir, download=download, size=size)
    else:
      images, labels = sources.load_tfds(name, split, data_dir=data_dir, download=download, max_size=max_size)
    return Source(description, labels, images, None)
  if name in FOLDER_NAMES:
    spec, decode_size, corrupt = where
    paths, labels = _concat([folders.scan_folder(spec, p) for p in parts])
    if decode_size is None:
      return Source(description, labels, None, paths)
    images, kept = folders.decode_all(paths, decode_size, corrupt)
    _log.info(
      "%s decoded into memory: %d images of %d px, %.1f MiB", description, len(kept), decode_size, images.nbytes / 2**20
    )
    return Source(description, labels[kept], images, None)
  if name in archives.LOCAL_DIRS:
    root = archives.resolve_dir(name, where[0], tuple(parts))
    images, labels = _concat([archives.load_local(name, root, p) for p in parts])
  elif name == "digits":
    images, labels = _concat([load_digits(p) for p in parts])
  else:
    raise DataError(f"Dataset {name!r} has no loader.")
  return Source(description, labels, _shrink(images, max_size), None)


def load_source(
  name: str, split: str, data_cfg: Any, *, max_size: int | None = None, in_memory: bool | None = None
) -> Source:
  """The examples of dataset `name`, split `split` ("a+b" concatenates splits).

  Image folders are file lists, or with `in_memory` (default: data.pipeline is "device") decoded into
  memory as squares of data.max_stored_size (else data.image_size) pixels: shorter side resized, centre kept.
  """
  check_name(name)
  if name in TFDS_NAMES:
    platform.hide_gpus_from_tensorflow()  # before TensorFlow touches any device
    # imagenet100_tfds: mixed sizes, stored as squares like image folders on the device path.
    size = int(data_cfg.max_stored_size or data_cfg.image_size) if name == "imagenet100_tfds" else None
    where = (data_cfg.tfds_data_dir, bool(data_cfg.download), size)
  elif name in FOLDER_NAMES:
    in_memory = data_cfg.pipeline == "device" if in_memory is None else in_memory
    decode_size = int(data_cfg.max_stored_size or data_cfg.image_size) if in_memory else None
    where = (folders.folder_spec(name, data_cfg), decode_size, data_cfg.corrupt_images)
    max_size = None  # decoded at decode_size already
  elif name in archives.LOCAL_DIRS:
    where = (archives.configured_dir(name, data_cfg),)
  else:
    where = ()
  return _load_cached(name, split, where, max_size)


def clear_cache() -> None:
  """Drops every cached dataset and folder listing (frees memory; tests use it between mocks)."""
  _load_cached.cache_clear()
  folders.folder_index.cache_clear()


# --- A pretraining mixture --------------------------------------------------------------------


def load_mixture(data_cfg: Any, entries: list[DatasetSpec], *, in_memory: bool | None = None) -> list[Source]:
  """The sources of the (checked) pretraining mixture, in `data.datasets` order (`in_memory`: see load_source)."""
  return [
    load_source(e.name, e.split, data_cfg, max_size=data_cfg.max_stored_size, in_memory=in_memory) for e in entries
  ]
