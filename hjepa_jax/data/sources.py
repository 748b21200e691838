"""Indexable example collections behind every dataset name.

A source is either images held in memory (CIFAR-10, STL-10, digits) or a list
of image files (ImageNet-100); both are addressed by example index, which is
what lets the pipeline start anywhere in its order. Loaded sources are cached
per process so pretraining and evaluation share one copy.
"""

import dataclasses
import functools
import os
from typing import Any

import numpy as np

from hjepa_jax.data import cifar_local, digits, imagenet100, specs
from hjepa_jax.data.errors import DataError

_TFDS_NAMES = {"cifar10": "cifar10", "stl10": "stl10"}


@dataclasses.dataclass(frozen=True, eq=False)
class ArraySource:
  """uint8 images [N, H, W, 3] in memory with int32 labels (-1: unlabelled)."""

  images: np.ndarray
  labels: np.ndarray
  description: str

  def __len__(self) -> int:
    return len(self.images)


@dataclasses.dataclass(frozen=True, eq=False)
class FileSource:
  """Image file paths with int32 labels, decoded on the fly."""

  paths: np.ndarray
  labels: np.ndarray
  description: str

  def __len__(self) -> int:
    return len(self.paths)


Source = ArraySource | FileSource


def _tfds_load(*args, **kwargs):
  from hjepa_jax.data import tfds_source  # imports TensorFlow; only when a TFDS dataset is used

  return tfds_source.load(*args, **kwargs)


def _shrink(images: np.ndarray, max_size: int | None) -> np.ndarray:
  """Downscales same-sized in-memory images so neither side exceeds max_size."""
  h, w = images.shape[1:3]
  if max_size is None or max(h, w) <= max_size:
    return images
  from hjepa_jax.data import transforms  # imports TensorFlow

  scale = max_size / max(h, w)
  size = (max(1, round(h * scale)), max(1, round(w * scale)))
  chunks = [
      transforms.to_uint8(transforms.resize(images[i : i + 1024], *size)).numpy()
      for i in range(0, len(images), 1024)
  ]
  return np.concatenate(chunks)


@functools.lru_cache(maxsize=8)
def _load_cached(
    name: str,
    split: str,
    cifar10_dir: str | None,
    imagenet100_dir: str | None,
    tfds_data_dir: str | None,
    download: bool,
    max_size: int | None,
) -> Source:
  description = f"{name}[{split}]"
  if name in _TFDS_NAMES:
    images, labels = _tfds_load(
        _TFDS_NAMES[name], split, data_dir=tfds_data_dir, download=download, max_size=max_size
    )
    return _frozen(ArraySource(images, labels, description))
  parts = split.split("+")
  if name == "imagenet100":
    scanned = [imagenet100.scan(imagenet100_dir, p) for p in parts]
    return FileSource(
        np.concatenate([s[0] for s in scanned]), np.concatenate([s[1] for s in scanned]), description
    )
  if name == "cifar10_local":
    root = cifar_local.resolve_dir(cifar10_dir)
    loaded = [cifar_local.load(root, p) for p in parts]
  elif name == "digits":
    loaded = [digits.load(p) for p in parts]
  else:
    specs.check_name(name)
    raise DataError(f"Dataset {name!r} has no loader.")
  images = np.concatenate([x for x, _ in loaded]) if len(loaded) > 1 else loaded[0][0]
  labels = np.concatenate([y for _, y in loaded]) if len(loaded) > 1 else loaded[0][1]
  return _frozen(ArraySource(_shrink(images, max_size), labels, description))


def _frozen(source: ArraySource) -> ArraySource:
  """Cached arrays are shared between callers, so make them read-only."""
  source.images.flags.writeable = False
  source.labels.flags.writeable = False
  return source


def load_source(name: str, split: str, data_cfg: Any, *, max_size: int | None = None) -> Source:
  """The examples of dataset `name`, split `split` ("a+b" concatenates splits)."""
  specs.check_name(name)
  if name in _TFDS_NAMES or max_size is not None:
    from hjepa_jax.data import tf_runtime  # before TensorFlow touches any device

    tf_runtime.ensure_cpu_only()
  return _load_cached(
      name,
      split,
      (data_cfg.cifar10_dir or os.environ.get(cifar_local.ENV_VAR)) if name == "cifar10_local" else None,
      data_cfg.imagenet100_dir if name == "imagenet100" else None,
      data_cfg.tfds_data_dir if name in _TFDS_NAMES else None,
      bool(data_cfg.download) if name in _TFDS_NAMES else False,
      max_size,
  )


def clear_cache() -> None:
  """Drops every cached dataset (frees memory; tests use it between mocks)."""
  _load_cached.cache_clear()
