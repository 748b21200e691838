"""Shared by the data tests: an autouse fixture for a fresh dataset cache, and small on-disk datasets in the
real layouts (CIFAR-10/100 python pickles, STL-10 binaries, ImageNet-100 and other image folders), for tests
without downloads."""

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest

import hjepa_jax.data as data
from hjepa_jax.data import archives, folders


@pytest.fixture(autouse=True)
def fresh_cache():
  """Every test starts and ends with an empty dataset cache, so no test sees another's arrays."""
  data.clear_cache()
  yield
  data.clear_cache()


def data_cfg(**overrides):
  """The default data config with top-level keys overridden."""
  cfg = data.default_data_config()
  for k, v in overrides.items():
    cfg[k] = v
  return cfg


def write_fake_cifar10(
  root: str | Path, per_batch: int = 20, seed: int = 0, images: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
  """Writes data_batch_1..5, test_batch and batches.meta with random images (or `images`
  [per_batch, 32, 32, 3] in every file).

  Returns the train images [5 * per_batch, 32, 32, 3] and labels as the
  loader should see them, so tests can compare pixel for pixel.
  """
  given = images
  root = Path(root)
  root.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(seed)
  train_x, train_y = [], []
  for name in archives.CIFAR10_TRAIN_FILES + archives.CIFAR10_TEST_FILES:
    images = rng.integers(0, 256, (per_batch, 32, 32, 3), dtype=np.uint8) if given is None else given
    labels = rng.integers(0, 10, per_batch).tolist()
    batch = {
      b"batch_label": name.encode(),
      b"labels": labels,
      b"data": images.transpose(0, 3, 1, 2).reshape(per_batch, -1),  # channel-major rows
      b"filenames": [f"{name}_{i}.png".encode() for i in range(per_batch)],
    }
    with open(root / name, "wb") as f:
      pickle.dump(batch, f)
    if name in archives.CIFAR10_TRAIN_FILES:
      train_x.append(images)
      train_y.extend(labels)
  with open(root / "batches.meta", "wb") as f:
    pickle.dump({b"label_names": [b"c%d" % i for i in range(10)], b"num_cases_per_batch": per_batch}, f)
  return np.concatenate(train_x), np.asarray(train_y, np.int32)


def write_fake_imagenet(
  root: str | Path,
  class_indices: tuple[int, ...] = (0, 1, 2),
  per_class: int = 4,
  size: tuple[int, int] = (40, 56),
  corrupt: tuple[str, ...] = (),
) -> dict[str, list[tuple[Path, int]]]:
  """Writes tiny JPEGs to root/{train,val}/<wnid>/ for the given ImageNet-100 classes.

  Each entry of `corrupt` ("train" or "val") adds one unreadable .JPEG to the
  first class of that split. Returns split -> [(path, label)] of the good files.
  """
  from PIL import Image

  root = Path(root)
  rng = np.random.default_rng(0)
  written: dict[str, list[tuple[Path, int]]] = {"train": [], "val": []}
  wnids = folders.imagenet100_classes()
  for split in ("train", "val"):
    for label in class_indices:
      class_dir = root / split / wnids[label]
      class_dir.mkdir(parents=True, exist_ok=True)
      for i in range(per_class):
        path = class_dir / f"{wnids[label]}_{i}.JPEG"
        pixels = rng.integers(0, 256, size + (3,), dtype=np.uint8)
        Image.fromarray(pixels).save(path, format="JPEG", quality=95)
        written[split].append((path, label))
  for split in corrupt:
    bad = root / split / wnids[class_indices[0]] / "corrupt.JPEG"
    bad.write_bytes(b"this is not an image")
  return written


def write_image_folder(
  root: str | Path,
  classes: tuple[str, ...] = ("cat", "ant", "bee"),
  per_class: int = 4,
  splits: tuple[str, ...] = ("train", "val"),
  size: tuple[int, int] = (40, 56),
  corrupt: tuple[str, ...] = (),
  seed: int = 0,
) -> dict[str, list[tuple[Path, str]]]:
  """Writes root/<split>/<class>/ with tiny images, JPEG and PNG alternating (extensions in mixed case).

  Each entry of `corrupt` (a split) adds one unreadable "broken.jpg" to the first class there.
  Returns split -> [(path, class name)] of the good files.
  """
  from PIL import Image

  root = Path(root)
  rng = np.random.default_rng(seed)
  written: dict[str, list[tuple[Path, str]]] = {}
  for split in splits:
    written[split] = []
    for name in classes:
      class_dir = root / split / name
      class_dir.mkdir(parents=True, exist_ok=True)
      for i in range(per_class):
        ext, fmt = ((".JPEG", "JPEG"), (".png", "PNG"))[i % 2]
        path = class_dir / f"{name}_{i}{ext}"
        Image.fromarray(rng.integers(0, 256, size + (3,), dtype=np.uint8)).save(path, format=fmt)
        written[split].append((path, name))
  for split in corrupt:
    (root / split / classes[0] / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
  return written


def _random_splits(root: str | Path, counts: dict[str, int], side: int, num_classes: int, seed: int):
  """Creates root; yields (split, random images [n, side, side, 3], random labels [n]) per entry of counts."""
  Path(root).mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(seed)
  for split, n in counts.items():
    yield (
      split,
      rng.integers(0, 256, (n, side, side, 3), dtype=np.uint8),
      rng.integers(0, num_classes, n).astype(np.int32),
    )


def write_fake_stl10(
  root: str | Path, counts: dict[str, int], seed: int = 0
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Writes the stl10_binary/ files (train_X.bin, train_y.bin, test_*, unlabeled_X.bin) for `counts`
  {"train": n, "test": n, "unlabelled": n}: 3 planes of 96 x 96 per image, each stored column-major,
  labels 1..10. Returns split -> (images [n, 96, 96, 3] as a viewer sees them, labels 0..9 or -1)."""
  root, out = Path(root), {}
  for split, images, labels in _random_splits(root, counts, 96, 10, seed):
    stem = "unlabeled" if split == "unlabelled" else split
    # Column-major planes: for each image and channel, x (column) varies slowest, then y (row).
    images.transpose(0, 3, 2, 1).tofile(root / f"{stem}_X.bin")
    if split == "unlabelled":
      labels = np.full(len(images), -1, np.int32)
    else:
      (labels + 1).astype(np.uint8).tofile(root / f"{stem}_y.bin")
    out[split] = (images, labels)
  return out


def write_fake_fashion_mnist(
  root: str | Path, counts: dict[str, int], seed: int = 0
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Writes Fashion-MNIST's gzipped idx files ({train,t10k}-{images-idx3,labels-idx1}-ubyte.gz), written from
  the format's description (big-endian header: 0, 0, type 0x08, ndim, then each dimension as uint32).
  Returns split -> (grey images [n, 28, 28], labels)."""
  root, out = Path(root), {}
  for split, images, labels in _random_splits(root, counts, 28, 10, seed):
    grey = images[..., 0]
    prefix = "train" if split == "train" else "t10k"
    for kind, array in (("images-idx3", grey), ("labels-idx1", labels.astype(np.uint8))):
      header = bytes([0, 0, 8, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
      with gzip.open(root / f"{prefix}-{kind}-ubyte.gz", "wb") as f:
        f.write(header + array.tobytes())
    out[split] = (grey, labels)
  return out


def write_fake_cifar100(
  root: str | Path, counts: dict[str, int], seed: int = 0
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Writes the cifar-100-python/ pickles train, test (data, fine_labels, coarse_labels) and meta.
  Returns split -> (images [n, 32, 32, 3], fine labels)."""
  root, out = Path(root), {}
  for split, images, fine in _random_splits(root, counts, 32, 100, seed):
    batch = {
      b"filenames": [f"{split}_{i}.png".encode() for i in range(len(images))],
      b"batch_label": f"{split} batch".encode(),
      b"fine_labels": fine.tolist(),
      b"coarse_labels": (fine // 5).tolist(),
      b"data": images.transpose(0, 3, 1, 2).reshape(len(images), -1),  # channel-major rows
    }
    with open(root / split, "wb") as f:
      pickle.dump(batch, f)
    out[split] = (images, fine)
  with open(root / "meta", "wb") as f:
    pickle.dump(
      {b"fine_label_names": [b"f%d" % i for i in range(100)], b"coarse_label_names": [b"c%d" % i for i in range(20)]}, f
    )
  return out
