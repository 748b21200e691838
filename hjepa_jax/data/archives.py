"""Datasets from their official release files, offline and without TensorFlow: CIFAR-10 and CIFAR-100
(python pickles), STL-10 (the `stl10_binary/` files, the 100k unlabelled images included) and Fashion-MNIST
(the gzipped idx files; Debian's `dataset-fashion-mnist` package installs them in /usr/share/datasets/fashion-mnist).

Each folder comes from its config key or else an environment variable (`LOCAL_DIRS`), and is checked for
the files a split needs before anything is read, so a wrong path fails in a second saying which files are
missing. Pickles are read with an unpickler that only admits the numpy classes these files contain, so a
tampered file cannot run code.
"""

import dataclasses
import gzip
import hashlib
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from hjepa_jax.data.catalog import DataError


@dataclasses.dataclass(frozen=True)
class LocalDir:
  """Where dataset `name` is looked for (config key, environment variable), what the folder looks like,
  and the files each split reads."""

  key: str
  env_var: str
  layout: str
  split_files: dict[str, tuple[str, ...]]


CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_FILES = ("test_batch",)
LOCAL_DIRS = {
  "cifar10_local": LocalDir(
    "cifar10_dir",
    "HJEPA_CIFAR10_DIR",
    "the python-pickle layout of cifar-10-python.tar.gz (cifar-10-batches-py/)",
    {"train": CIFAR10_TRAIN_FILES, "test": CIFAR10_TEST_FILES},
  ),
  "cifar100_local": LocalDir(
    "cifar100_dir",
    "HJEPA_CIFAR100_DIR",
    "the python-pickle layout of cifar-100-python.tar.gz (cifar-100-python/)",
    {"train": ("train", "meta"), "test": ("test", "meta")},
  ),
  "stl10_local": LocalDir(
    "stl10_dir",
    "HJEPA_STL10_DIR",
    "the binary layout of stl10_binary.tar.gz (stl10_binary/)",
    {"train": ("train_X.bin", "train_y.bin"), "test": ("test_X.bin", "test_y.bin"), "unlabelled": ("unlabeled_X.bin",)},
  ),
  "fashion_mnist_local": LocalDir(
    "fashion_mnist_dir",
    "HJEPA_FASHION_MNIST_DIR",
    "the gzipped idx files of Zalando's release (Debian: apt install dataset-fashion-mnist, then "
    "/usr/share/datasets/fashion-mnist)",
    {
      "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
      "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
    },
  ),
}
CIFAR10_ENV_VAR = LOCAL_DIRS["cifar10_local"].env_var


def configured_dir(name: str, data_cfg: Any) -> str | None:
  """data.<key> of dataset `name`, else its environment variable (None if neither is set)."""
  configured = {
    "cifar10_local": data_cfg.cifar10_dir,
    "cifar100_local": data_cfg.cifar100_dir,
    "stl10_local": data_cfg.stl10_dir,
    "fashion_mnist_local": data_cfg.fashion_mnist_dir,
  }
  return configured[name] or os.environ.get(LOCAL_DIRS[name].env_var)


def _how_to_fix(name: str, files: tuple[str, ...]) -> str:
  spec = LOCAL_DIRS[name]
  tfds = name.replace("_local", "")
  alt = (
    f", or use dataset '{tfds}' with --config.data.tfds_data_dir=... where it has been prepared"
    if tfds in ("cifar10", "stl10")
    else ""
  )
  return (
    f"Set --config.data.{spec.key}=PATH (or the {spec.env_var} environment variable) to a folder with "
    f"{', '.join(files)} ({spec.layout}){alt}."
  )


def resolve_dir(name: str, root: str | None, splits: tuple[str, ...]) -> Path:
  """`root` checked to hold every file of `splits` of dataset `name`."""
  spec = LOCAL_DIRS[name]
  files = tuple(dict.fromkeys(f for s in splits for f in spec.split_files.get(s, ())))
  if not root:
    raise DataError(f"No folder configured for dataset {name!r}. {_how_to_fix(name, files)}")
  path = Path(root).expanduser()
  missing = [f for f in files if not (path / f).is_file()]
  if missing:
    raise DataError(f"{name} not found at {path} (missing {', '.join(missing)}). {_how_to_fix(name, files)}")
  return path


def resolve_cifar10_dir(cifar10_dir: str | None) -> Path:
  """The configured folder, else $HJEPA_CIFAR10_DIR, checked to hold every batch file."""
  return resolve_dir("cifar10_local", cifar10_dir or os.environ.get(CIFAR10_ENV_VAR), ("train", "test"))


def load_local(name: str, root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
  """uint8 images [N, H, W, 3] and int32 labels (-1: unlabelled) of one split of a LOCAL_DIRS dataset."""
  splits = tuple(LOCAL_DIRS[name].split_files)
  if split not in splits:
    raise DataError(f"{name} has splits {', '.join(splits)}, not {split!r}.")
  if name == "cifar10_local":
    return load_cifar10(root, split)
  if name == "cifar100_local":
    return _read_pickle(root / split, "fine_labels", "CIFAR-100", "cifar-100-python.tar.gz")
  if name == "fashion_mnist_local":
    return load_idx_pair(root, *LOCAL_DIRS[name].split_files[split])
  return load_stl10(root, split)


# --- CIFAR-10 / CIFAR-100 python pickles -------------------------------------------------------

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
      raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch file")
    return super().find_class(module, name)


def verify_cifar10_md5(root: Path) -> None:
  """Raises DataError if a batch file differs from the official release."""
  for name, expected in _CIFAR10_MD5.items():
    digest = hashlib.md5((root / name).read_bytes()).hexdigest()
    if digest != expected:
      raise DataError(
        f"{root / name} has md5 {digest}, expected {expected}: the file is corrupt or not the "
        "official CIFAR-10 python release. Re-extract cifar-10-python.tar.gz."
      )


def _read_pickle(path: Path, label_key: str, what: str, archive: str) -> tuple[np.ndarray, np.ndarray]:
  """Images [N, 32, 32, 3] and labels of one CIFAR pickle (rows: 1024 red, 1024 green, 1024 blue values)."""
  try:
    with open(path, "rb") as f:
      batch = _NumpyOnlyUnpickler(f, encoding="bytes").load()
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    data = np.asarray(batch["data"], dtype=np.uint8)
    labels = np.asarray(batch[label_key], dtype=np.int32)
  except (OSError, pickle.UnpicklingError, EOFError, KeyError, ValueError, AttributeError) as e:
    raise DataError(f"Cannot read {what} file {path}: {e!r}. Re-extract {archive}.") from e
  if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
    raise DataError(f"{path} is not a {what} file: data shape {data.shape}, {len(labels)} labels.")
  images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
  return np.ascontiguousarray(images), labels


def _read_cifar10_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
  return _read_pickle(path, "labels", "CIFAR-10 batch", "cifar-10-python.tar.gz")


def _concat(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
  """(images or paths, labels) of several parts, one after the other."""
  if len(parts) == 1:
    return parts[0]
  return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def load_cifar10(root: Path, split: str, *, check_md5: bool = False) -> tuple[np.ndarray, np.ndarray]:
  """uint8 images [N, 32, 32, 3] and int32 labels of split "train" or "test"."""
  if split not in ("train", "test"):
    raise DataError(f"CIFAR-10 has splits 'train' and 'test', not {split!r}.")
  if check_md5:
    verify_cifar10_md5(root)
  files = CIFAR10_TRAIN_FILES if split == "train" else CIFAR10_TEST_FILES
  return _concat([_read_cifar10_batch(root / f) for f in files])


# --- STL-10 binaries -----------------------------------------------------------------------------
# X files: uint8, per image 3 planes (R, G, B) of 96 x 96 stored column-major (Matlab order);
# y files: one uint8 label 1..10 per image. The unlabelled file has no labels (-1 here).

STL10_SIZE = 96
_STL10_BYTES = 3 * STL10_SIZE * STL10_SIZE
_STL10_CHUNK = 4096  # images transposed at a time, so the 2.7 GB unlabelled file is read without a second copy


def load_stl10(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
  """uint8 images [N, 96, 96, 3] and int32 labels 0..9 (-1 for "unlabelled")."""
  x_file, *y_file = LOCAL_DIRS["stl10_local"].split_files[split]
  raw = np.memmap(root / x_file, np.uint8, mode="r")
  if raw.size % _STL10_BYTES:
    raise DataError(
      f"{root / x_file} is not an STL-10 image file ({raw.size} bytes, not a multiple of {_STL10_BYTES})."
    )
  planes = raw.reshape(-1, 3, STL10_SIZE, STL10_SIZE)  # [n, channel, column, row]
  images = np.empty((len(planes), STL10_SIZE, STL10_SIZE, 3), np.uint8)
  for i in range(0, len(planes), _STL10_CHUNK):
    images[i : i + _STL10_CHUNK] = planes[i : i + _STL10_CHUNK].transpose(0, 3, 2, 1)
  if not y_file:
    return images, np.full(len(images), -1, np.int32)
  labels = np.fromfile(root / y_file[0], np.uint8).astype(np.int32) - 1
  if len(labels) != len(images) or labels.min(initial=0) < 0 or labels.max(initial=0) > 9:
    raise DataError(
      f"{root / y_file[0]} does not label {root / x_file}: {len(labels)} labels for {len(images)} images, "
      "values must be 1..10. Re-extract stl10_binary.tar.gz."
    )
  return images, labels


# --- idx files (Fashion-MNIST; MNIST's layout) ----------------------------------------------------
# Big-endian header: two zero bytes, the element type (0x08: uint8), the number of dimensions, then one
# uint32 per dimension; the values follow row-major. Images: [N, 28, 28]; labels: [N].

_IDX_UINT8 = 0x08


def _read_idx(path: Path, ndim: int) -> np.ndarray:
  """The uint8 array of one (gzipped) idx file with `ndim` dimensions."""
  try:
    with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as f:
      raw = f.read()
  except (OSError, EOFError) as e:
    raise DataError(f"Cannot read idx file {path}: {e!r}. Re-download or reinstall it.") from e
  header = 4 + 4 * ndim
  if len(raw) < header or raw[:2] != b"\0\0" or raw[2] != _IDX_UINT8 or raw[3] != ndim:
    raise DataError(f"{path} is not an idx file of uint8 with {ndim} dimensions (header {raw[:4].hex()}).")
  shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
  if len(raw) - header != int(np.prod(shape)):
    raise DataError(f"{path}: the header says {shape}, but {len(raw) - header} values follow. Re-download it.")
  return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


def load_idx_pair(root: Path, images_file: str, labels_file: str) -> tuple[np.ndarray, np.ndarray]:
  """uint8 images [N, H, W, 3] (grey repeated in R, G and B) and int32 labels of an idx image/label pair."""
  grey = _read_idx(root / images_file, 3)
  labels = _read_idx(root / labels_file, 1).astype(np.int32)
  if len(labels) != len(grey):
    raise DataError(f"{root / labels_file} has {len(labels)} labels for the {len(grey)} images of {images_file}.")
  return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=-1)), labels
