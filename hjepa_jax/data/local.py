"""Where examples come from, without TensorFlow: the `Source` cache, CIFAR-10 pickles, digits, ImageNet-100 scans.

A source is either images held in memory (CIFAR-10, STL-10, digits) or a list
of image files (ImageNet-100); both are addressed by example index, which is
what lets the pipelines start anywhere in their order. Loaded sources are cached
per process so pretraining and evaluation share one copy. Nothing here waits on
the network: a dataset that is not there fails within seconds, saying where it
was looked for and what the offline alternatives are.

The local in-memory datasets (cifar10_local, digits) load with numpy alone, so the device input
path (`device.py`) and evaluation on them run where TensorFlow is absent. TFDS datasets
(`sources.load_tfds`) and shrinking stored images (data.max_stored_size) import TensorFlow when
asked for.
"""

import dataclasses
import functools
import hashlib
import logging
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from hjepa_jax import platform
from hjepa_jax.data.validate import DataError, DatasetSpec, check_name

_log = logging.getLogger(__name__)
TFDS_NAMES = ("cifar10", "stl10")


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


def _concat(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
  """(images or paths, labels) of several splits, one after the other."""
  if len(parts) == 1:
    return parts[0]
  return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


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
  if name in TFDS_NAMES:
    from hjepa_jax.data.sources import load_tfds  # pylint: disable=g-import-not-at-top  (TensorFlow)

    images, labels = load_tfds(name, split, data_dir=tfds_data_dir, download=download, max_size=max_size)
    return Source(description, labels, images, None)
  parts = split.split("+")
  if name == "imagenet100":
    paths, labels = _concat([scan_imagenet100(imagenet100_dir, p) for p in parts])
    return Source(description, labels, None, paths)
  if name == "cifar10_local":
    root = resolve_cifar10_dir(cifar10_dir)
    images, labels = _concat([load_cifar10(root, p) for p in parts])
  elif name == "digits":
    images, labels = _concat([load_digits(p) for p in parts])
  else:
    raise DataError(f"Dataset {name!r} has no loader.")
  return Source(description, labels, _shrink(images, max_size), None)


def load_source(name: str, split: str, data_cfg: Any, *, max_size: int | None = None) -> Source:
  """The examples of dataset `name`, split `split` ("a+b" concatenates splits)."""
  check_name(name)
  if name in TFDS_NAMES:
    platform.hide_gpus_from_tensorflow()  # before TensorFlow touches any device
  return _load_cached(
    name,
    split,
    (data_cfg.cifar10_dir or os.environ.get(CIFAR10_ENV_VAR)) if name == "cifar10_local" else None,
    data_cfg.imagenet100_dir if name == "imagenet100" else None,
    data_cfg.tfds_data_dir if name in TFDS_NAMES else None,
    bool(data_cfg.download) if name in TFDS_NAMES else False,
    max_size,
  )


def clear_cache() -> None:
  """Drops every cached dataset (frees memory; tests use it between mocks)."""
  _load_cached.cache_clear()


# --- CIFAR-10 from the `cifar-10-batches-py` folder --------------------------------------------
# The pickles are read with an unpickler that only admits the numpy classes
# these files contain, so a tampered file cannot run code.

CIFAR10_ENV_VAR = "HJEPA_CIFAR10_DIR"
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_FILES = ("test_batch",)
# md5 sums of the official cifar-10-python.tar.gz contents.
_CIFAR10_MD5 = {
  "data_batch_1": "c99cafc152244af753f735de768cd75f",
  "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
  "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
  "data_batch_4": "634d18415352ddfa80567beed471001a",
  "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
  "test_batch": "40351d587109b95175f43aff81a1287e",
}

_ALLOWED_GLOBALS = {
  ("numpy.core.multiarray", "_reconstruct"),
  ("numpy._core.multiarray", "_reconstruct"),
  ("numpy.core.numeric", "_frombuffer"),
  ("numpy._core.numeric", "_frombuffer"),
  ("numpy", "ndarray"),
  ("numpy", "dtype"),
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
  def find_class(self, module, name):
    if (module, name) not in _ALLOWED_GLOBALS:
      raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR-10 batch file")
    return super().find_class(module, name)


def _cifar10_how_to_fix() -> str:
  return (
    "Set --config.data.cifar10_dir=PATH (or the HJEPA_CIFAR10_DIR environment variable) to a folder "
    f"with {', '.join(CIFAR10_TRAIN_FILES)} and test_batch (the python-pickle layout of cifar-10-python.tar.gz), "
    "or use dataset 'cifar10' with --config.data.tfds_data_dir=... where it has been prepared."
  )


def resolve_cifar10_dir(cifar10_dir: str | None) -> Path:
  """The configured folder, else $HJEPA_CIFAR10_DIR, checked to hold every batch file."""
  root = cifar10_dir or os.environ.get(CIFAR10_ENV_VAR)
  if not root:
    raise DataError(f"No CIFAR-10 folder configured for dataset 'cifar10_local'. {_cifar10_how_to_fix()}")
  path = Path(root).expanduser()
  missing = [f for f in CIFAR10_TRAIN_FILES + CIFAR10_TEST_FILES if not (path / f).is_file()]
  if missing:
    raise DataError(f"CIFAR-10 not found at {path} (missing {', '.join(missing)}). {_cifar10_how_to_fix()}")
  return path


def verify_cifar10_md5(root: Path) -> None:
  """Raises DataError if a batch file differs from the official release."""
  for name, expected in _CIFAR10_MD5.items():
    digest = hashlib.md5((root / name).read_bytes()).hexdigest()
    if digest != expected:
      raise DataError(
        f"{root / name} has md5 {digest}, expected {expected}: the file is corrupt or not the "
        "official CIFAR-10 python release. Re-extract cifar-10-python.tar.gz."
      )


def _read_cifar10_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
  try:
    with open(path, "rb") as f:
      batch = _NumpyOnlyUnpickler(f, encoding="bytes").load()
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    data = np.asarray(batch["data"], dtype=np.uint8)
    labels = np.asarray(batch["labels"], dtype=np.int32)
  except (OSError, pickle.UnpicklingError, EOFError, KeyError, ValueError, AttributeError) as e:
    raise DataError(f"Cannot read CIFAR-10 batch {path}: {e!r}. Re-extract cifar-10-python.tar.gz.") from e
  if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
    raise DataError(f"{path} is not a CIFAR-10 batch: data shape {data.shape}, {len(labels)} labels.")
  # Rows are channel-major (1024 red, 1024 green, 1024 blue values).
  images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
  return np.ascontiguousarray(images), labels


def load_cifar10(root: Path, split: str, *, check_md5: bool = False) -> tuple[np.ndarray, np.ndarray]:
  """uint8 images [N, 32, 32, 3] and int32 labels of split "train" or "test"."""
  if split not in ("train", "test"):
    raise DataError(f"CIFAR-10 has splits 'train' and 'test', not {split!r}.")
  if check_md5:
    verify_cifar10_md5(root)
  files = CIFAR10_TRAIN_FILES if split == "train" else CIFAR10_TEST_FILES
  return _concat([_read_cifar10_batch(root / f) for f in files])


# --- scikit-learn's bundled 8x8 digits as tiny RGB images, for smoke runs offline --------------

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


# --- ImageNet-100 (the CMC 100-class subset) from an image-folder layout -----------------------
# Reads ROOT/train/<wnid>/* and ROOT/val/<wnid>/* for the 100 WordNet ids in
# third_party/imagenet100/classes.txt; other class folders are ignored, so ROOT
# may equally be a full ImageNet-1k folder. Label = line index in classes.txt.

IMAGENET100_CLASSES_FILE = Path(__file__).resolve().parents[2] / "third_party" / "imagenet100" / "classes.txt"
_IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png")
_IMAGENET100_SPLIT_DIRS = {"train": "train", "val": "val", "test": "val"}


@functools.lru_cache(maxsize=1)
def imagenet100_classes() -> tuple[str, ...]:
  """The 100 WordNet ids, in label order."""
  try:
    wnids = tuple(line.strip() for line in IMAGENET100_CLASSES_FILE.read_text().splitlines() if line.strip())
  except OSError as e:
    raise DataError(
      f"ImageNet-100 class list missing at {IMAGENET100_CLASSES_FILE}; restore it from the repository."
    ) from e
  if len(wnids) != 100 or len(set(wnids)) != 100:
    raise DataError(f"{IMAGENET100_CLASSES_FILE} must list 100 distinct WordNet ids, found {len(set(wnids))}.")
  return wnids


def scan_imagenet100(root: str | None, split: str) -> tuple[np.ndarray, np.ndarray]:
  """Sorted image paths (numpy str array) and int32 labels of one split."""
  if not root:
    raise DataError(
      "Dataset 'imagenet100' needs --config.data.imagenet100_dir=ROOT, a folder with "
      "train/<wnid>/*.JPEG and val/<wnid>/*.JPEG (the ImageNet image-folder layout)."
    )
  if split not in _IMAGENET100_SPLIT_DIRS:
    raise DataError(f"imagenet100 has splits 'train' and 'val' ('test' means 'val'), not {split!r}.")
  split_dir = Path(root).expanduser() / _IMAGENET100_SPLIT_DIRS[split]
  if not split_dir.is_dir():
    raise DataError(
      f"ImageNet-100 split folder {split_dir} does not exist. Point --config.data.imagenet100_dir at a "
      f"folder containing {_IMAGENET100_SPLIT_DIRS[split]}/<wnid>/*.JPEG for the classes in "
      f"{IMAGENET100_CLASSES_FILE}."
    )
  paths, labels, missing = [], [], []
  for label, wnid in enumerate(imagenet100_classes()):
    class_dir = split_dir / wnid
    if not class_dir.is_dir():
      missing.append(wnid)
      continue
    names = sorted(e.name for e in os.scandir(class_dir) if e.is_file() and e.name.lower().endswith(_IMAGE_EXTENSIONS))
    paths.extend(str(class_dir / n) for n in names)
    labels.extend([label] * len(names))
  if not paths:
    raise DataError(
      f"No images of the 100 ImageNet-100 classes under {split_dir} (expected {split_dir}/<wnid>/*.JPEG, "
      f"e.g. {split_dir / imagenet100_classes()[0]}). Check --config.data.imagenet100_dir."
    )
  if missing:
    _log.warning("ImageNet-100 %s: %d of 100 class folders missing under %s", split, len(missing), split_dir)
  _log.info("ImageNet-100 %s: %d images in %d classes", split, len(paths), 100 - len(missing))
  return np.asarray(paths), np.asarray(labels, np.int32)


# --- A pretraining mixture --------------------------------------------------------------------


def load_mixture(data_cfg: Any, entries: list[DatasetSpec]) -> list[Source]:
  """The sources of the (checked) pretraining mixture, in `data.datasets` order."""
  return [load_source(e.name, e.split, data_cfg, max_size=data_cfg.max_stored_size) for e in entries]
