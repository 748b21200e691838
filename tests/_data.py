"""Shared by the data tests: an autouse fixture for a fresh dataset cache, and small on-disk datasets in the
real layouts (CIFAR-10 python pickles, ImageNet-100 folders), for tests without downloads."""

import pickle
from pathlib import Path

import numpy as np
import pytest

import hjepa_jax.data as data
from hjepa_jax.data import sources


@pytest.fixture(autouse=True)
def fresh_cache():
  """Every test starts and ends with an empty dataset cache, so no test sees another's arrays."""
  data.clear_cache()
  yield
  data.clear_cache()


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
  for name in sources.CIFAR10_TRAIN_FILES + sources.CIFAR10_TEST_FILES:
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
    if name in sources.CIFAR10_TRAIN_FILES:
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
  wnids = sources.imagenet100_classes()
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
