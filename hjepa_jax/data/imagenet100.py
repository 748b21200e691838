"""ImageNet-100 (the CMC 100-class subset) from an image-folder layout.

Reads ROOT/train/<wnid>/* and ROOT/val/<wnid>/* for the 100 WordNet ids in
third_party/imagenet100/classes.txt; other class folders are ignored, so ROOT
may equally be a full ImageNet-1k folder. Label = line index in classes.txt.
"""

import functools
import logging
import os
from pathlib import Path

import numpy as np

from hjepa_jax.data.errors import DataError

_log = logging.getLogger(__name__)
CLASSES_FILE = Path(__file__).resolve().parents[2] / "third_party" / "imagenet100" / "classes.txt"
IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png")
SPLIT_DIRS = {"train": "train", "val": "val", "test": "val"}


@functools.lru_cache(maxsize=1)
def class_list() -> tuple[str, ...]:
  """The 100 WordNet ids, in label order."""
  try:
    wnids = tuple(line.strip() for line in CLASSES_FILE.read_text().splitlines() if line.strip())
  except OSError as e:
    raise DataError(f"ImageNet-100 class list missing at {CLASSES_FILE}; restore it from the repository.") from e
  if len(wnids) != 100 or len(set(wnids)) != 100:
    raise DataError(f"{CLASSES_FILE} must list 100 distinct WordNet ids, found {len(set(wnids))}.")
  return wnids


def scan(root: str | None, split: str) -> tuple[np.ndarray, np.ndarray]:
  """Sorted image paths (numpy str array) and int32 labels of one split."""
  if not root:
    raise DataError(
        "Dataset 'imagenet100' needs --config.data.imagenet100_dir=ROOT, a folder with "
        "train/<wnid>/*.JPEG and val/<wnid>/*.JPEG (the ImageNet image-folder layout)."
    )
  if split not in SPLIT_DIRS:
    raise DataError(f"imagenet100 has splits 'train' and 'val' ('test' means 'val'), not {split!r}.")
  split_dir = Path(root).expanduser() / SPLIT_DIRS[split]
  if not split_dir.is_dir():
    raise DataError(
        f"ImageNet-100 split folder {split_dir} does not exist. Point --config.data.imagenet100_dir at a "
        f"folder containing {SPLIT_DIRS[split]}/<wnid>/*.JPEG for the classes in {CLASSES_FILE}."
    )
  paths, labels, missing = [], [], []
  for label, wnid in enumerate(class_list()):
    class_dir = split_dir / wnid
    if not class_dir.is_dir():
      missing.append(wnid)
      continue
    names = sorted(
        e.name for e in os.scandir(class_dir) if e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS)
    )
    paths.extend(str(class_dir / n) for n in names)
    labels.extend([label] * len(names))
  if not paths:
    raise DataError(
        f"No images of the 100 ImageNet-100 classes under {split_dir} (expected {split_dir}/<wnid>/*.JPEG, "
        f"e.g. {split_dir / class_list()[0]}). Check --config.data.imagenet100_dir."
    )
  if missing:
    _log.warning("ImageNet-100 %s: %d of 100 class folders missing under %s", split, len(missing), split_dir)
  _log.info("ImageNet-100 %s: %d images in %d classes", split, len(paths), 100 - len(missing))
  return np.asarray(paths), np.asarray(labels, np.int32)
