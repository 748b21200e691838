"""CIFAR-10 from the `cifar-10-batches-py` folder, read without any network.

The pickles are read with an unpickler that only admits the numpy classes
these files contain, so a tampered file cannot run code.
"""

import hashlib
import os
import pickle
from pathlib import Path

import numpy as np

from hjepa_jax.data.errors import DataError

ENV_VAR = "HJEPA_CIFAR10_DIR"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)
# md5 sums of the official cifar-10-python.tar.gz contents.
MD5 = {
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


def _how_to_fix() -> str:
  return (
      "Set --config.data.cifar10_dir=PATH (or the HJEPA_CIFAR10_DIR environment variable) to a folder "
      f"with {', '.join(TRAIN_FILES)} and test_batch (the python-pickle layout of cifar-10-python.tar.gz), "
      "or use dataset 'cifar10' with --config.data.tfds_data_dir=... where it has been prepared."
  )


def resolve_dir(cifar10_dir: str | None) -> Path:
  """The configured folder, else $HJEPA_CIFAR10_DIR, checked to hold every batch file."""
  root = cifar10_dir or os.environ.get(ENV_VAR)
  if not root:
    raise DataError(f"No CIFAR-10 folder configured for dataset 'cifar10_local'. {_how_to_fix()}")
  path = Path(root).expanduser()
  missing = [f for f in TRAIN_FILES + TEST_FILES if not (path / f).is_file()]
  if missing:
    raise DataError(f"CIFAR-10 not found at {path} (missing {', '.join(missing)}). {_how_to_fix()}")
  return path


def verify_md5(root: Path) -> None:
  """Raises DataError if a batch file differs from the official release."""
  for name, expected in MD5.items():
    digest = hashlib.md5((root / name).read_bytes()).hexdigest()
    if digest != expected:
      raise DataError(
          f"{root / name} has md5 {digest}, expected {expected}: the file is corrupt or not the "
          "official CIFAR-10 python release. Re-extract cifar-10-python.tar.gz."
      )


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
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


def load(root: Path, split: str, *, check_md5: bool = False) -> tuple[np.ndarray, np.ndarray]:
  """uint8 images [N, 32, 32, 3] and int32 labels of split "train" or "test"."""
  if split not in ("train", "test"):
    raise DataError(f"CIFAR-10 has splits 'train' and 'test', not {split!r}.")
  if check_md5:
    verify_md5(root)
  parts = [_read_batch(root / f) for f in (TRAIN_FILES if split == "train" else TEST_FILES)]
  return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
