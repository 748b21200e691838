"""Image-folder datasets without TensorFlow: ROOT/<split>/<class>/*.{jpg,jpeg,png} listed into (paths, labels),
an optional seeded val hold-out, the unreadable-file registry, and PIL decoding into memory.

One listing and class-index rule serves both input paths: tf.data decodes the listed files one by one
(`sources.decode_with_fallback`), the device path and TF-free evaluation decode them here, once, into a
uint8 array. `image_folder` takes its classes from the sorted folder names of ROOT/train (or from a
class-list file); `imagenet100` is the same reader with the packaged CMC class list, so a full ImageNet
folder works too (unlisted class folders are ignored).

Why not `tfds.folder_dataset.ImageFolder`: it yields a tf.data stream in its own order and decodes in
TensorFlow, while both pipelines address examples by index (exact resumption, a corrupt file replaced
by the next one, the TF-free path); the listing it would save is the twenty lines of `_list_split`.
"""

import concurrent.futures
import dataclasses
import functools
import logging
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from hjepa_jax.data.catalog import DataError

_log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png")
SPLITS = ("train", "val", "test")
HOLDOUT_SEED = 0  # the val hold-out of image_folder.val_fraction is fixed: same files in every run
IMAGENET100_CLASSES_FILE = Path(__file__).resolve().parent / "imagenet100_classes.txt"  # package data


@dataclasses.dataclass(frozen=True)
class FolderSpec:
  """What one image-folder dataset reads: `root`; its classes in label order (None: the sorted folder names
  of root/train) and where they came from; the fraction of train held out as val when root/val is absent;
  the dataset's name and the config key of `root`, for messages."""

  name: str
  root: str | None
  classes: tuple[str, ...] | None
  classes_from: str
  val_fraction: float
  root_key: str


def read_class_list(path: str | Path, expected: int | None = None) -> tuple[str, ...]:
  """Class folder names, one per line (blank lines ignored); label i is line i."""
  try:
    names = tuple(line.strip() for line in Path(path).expanduser().read_text().splitlines() if line.strip())
  except OSError as e:
    raise DataError(
      f"Cannot read the class list {path}: {e.strerror or e}. Give a text file, one class per line."
    ) from e
  if len(set(names)) != len(names) or not names or (expected is not None and len(names) != expected):
    want = f"{expected} " if expected else ""
    raise DataError(f"{path} must list {want}distinct class names, one per line; found {len(set(names))} distinct.")
  return names


@functools.lru_cache(maxsize=1)
def imagenet100_classes() -> tuple[str, ...]:
  """The 100 WordNet ids of ImageNet-100 (CMC), in label order."""
  return read_class_list(IMAGENET100_CLASSES_FILE, expected=100)


def folder_spec(name: str, data_cfg: Any) -> FolderSpec:
  """The FolderSpec of dataset `name` ("image_folder" or "imagenet100") under `data_cfg`."""
  if name == "imagenet100":
    return FolderSpec(
      name, data_cfg.imagenet100_dir, imagenet100_classes(), "the ImageNet-100 list", 0.0, "imagenet100_dir"
    )
  cfg = data_cfg.image_folder
  classes = read_class_list(cfg.classes_file) if cfg.classes_file else None
  return FolderSpec(
    name,
    cfg.dir,
    classes,
    str(cfg.classes_file) if classes else "the sorted folder names of train/",
    float(cfg.val_fraction),
    "image_folder.dir",
  )


def _list_split(split_dir: Path, classes: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
  """Sorted image paths and labels under split_dir/<class>/, the classes without a folder there, and those whose
  folder holds no image file (both still classes: labels follow `classes`)."""
  paths, labels, missing, empty = [], [], [], []
  for label, name in enumerate(classes):
    class_dir = split_dir / name
    if not class_dir.is_dir():
      missing.append(name)
      continue
    files = sorted(e.name for e in os.scandir(class_dir) if e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS))
    if not files:
      empty.append(name)
    paths.extend(str(class_dir / f) for f in files)
    labels.extend([label] * len(files))
  return np.asarray(paths, dtype=str), np.asarray(labels, np.int32), missing, empty


def _named(names: list[str], limit: int = 10) -> str:
  shown = ", ".join(names[:limit])
  return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


def _hold_out(labels: np.ndarray, fraction: float) -> np.ndarray:
  """Boolean mask of the held-out examples: round(fraction * n) of each class, drawn with HOLDOUT_SEED."""
  held = np.zeros(len(labels), bool)
  for label in np.unique(labels):
    idx = np.flatnonzero(labels == label)
    rng = np.random.default_rng([HOLDOUT_SEED, int(label)])
    held[idx[rng.permutation(len(idx))[: round(fraction * len(idx))]]] = True
  return held


@functools.lru_cache(maxsize=8)
def folder_index(spec: FolderSpec) -> tuple[tuple[str, ...], dict[str, tuple[np.ndarray, np.ndarray]]]:
  """(classes, {split: (paths, labels)}) of every split found; logs the start-up line once per spec."""
  if not spec.root:
    raise DataError(
      f"Dataset {spec.name!r} needs --config.data.{spec.root_key}=ROOT, a folder with train/<class>/*.jpg "
      "(and val/<class>/*.jpg, test/<class>/*.jpg where there are such splits)."
    )
  root = Path(spec.root).expanduser()
  if not root.is_dir():
    raise DataError(f"{spec.name} folder {root} does not exist. Check --config.data.{spec.root_key}.")
  classes = spec.classes
  if classes is None:
    train_dir = root / "train"
    classes = tuple(sorted(e.name for e in os.scandir(train_dir) if e.is_dir())) if train_dir.is_dir() else ()
    if not classes:
      raise DataError(
        f"{spec.name}: no class folders under {train_dir} (expected {train_dir}/<class>/*.jpg). "
        f"Check --config.data.{spec.root_key}."
      )
  splits = {}
  for split in SPLITS:
    if (root / split).is_dir():
      paths, labels, missing, empty = _list_split(root / split, classes)
      splits[split] = (paths, labels)
      if missing and len(paths):
        _log.warning(
          "%s %s: %d of %d class folders missing under %s", spec.name, split, len(missing), len(classes), root / split
        )
      if empty and len(paths):  # a split without any image fails where it is used (scan_folder)
        _log.warning(
          "%s %s: %d of %d class folders under %s hold no image (%s) but still count as classes: %s. %s",
          spec.name,
          split,
          len(empty),
          len(classes),
          root / split,
          ", ".join(IMAGE_EXTENSIONS),
          _named(empty),
          "Add images to them or delete them (the labels of the classes sorted after them shift)."
          if spec.classes is None
          else f"Add images to them (the classes come from {spec.classes_from}).",
        )
  note = ""
  if "val" not in splits and spec.val_fraction > 0 and "train" in splits:
    paths, labels = splits["train"]
    held = _hold_out(labels, spec.val_fraction)
    splits["train"], splits["val"] = (paths[~held], labels[~held]), (paths[held], labels[held])
    note = f" (val: {spec.val_fraction:.0%} of train per class held out, seed {HOLDOUT_SEED})"
  counts = ", ".join(f"{s} {len(splits[s][0])}" if s in splits else f"{s} -" for s in SPLITS)
  _log.info(
    "%s at %s: %d classes from %s; images per split: %s%s",
    spec.name,
    root,
    len(classes),
    spec.classes_from,
    counts,
    note,
  )
  return classes, splits


def scan_folder(spec: FolderSpec, split: str) -> tuple[np.ndarray, np.ndarray]:
  """Image paths and int32 labels of one split ("test" falls back to val when there is no test image)."""
  if split not in SPLITS:
    raise DataError(
      f"{spec.name} has splits {', '.join(SPLITS)} ('test' means 'val' without a test/ folder), not {split!r}."
    )
  classes, splits = folder_index(spec)
  if split == "test" and not len(splits.get("test", ((),))[0]):
    split = "val"
  if split not in splits:
    hint = (
      " or set --config.data.image_folder.val_fraction to hold part of train out" if spec.name == "image_folder" else ""
    )
    raise DataError(
      f"{spec.name} split folder {Path(spec.root).expanduser() / split} does not exist. Point "
      f"--config.data.{spec.root_key} at a folder containing {split}/<class>/*.jpg{hint}."
    )
  paths, labels = splits[split]
  if not len(paths):
    where = Path(spec.root).expanduser() / split
    raise DataError(
      f"No images of the {len(classes)} {spec.name} classes under {where} (expected {where}/<class>/*.jpg, "
      f"e.g. {where / classes[0]}; extensions {', '.join(IMAGE_EXTENSIONS)}). Check --config.data.{spec.root_key}."
    )
  return paths, labels


def num_folder_classes(name: str, data_cfg: Any) -> int:
  """Number of classes of an image-folder dataset (lists the folder when the classes come from it)."""
  spec = folder_spec(name, data_cfg)
  return len(spec.classes) if spec.classes is not None else len(folder_index(spec)[0])


# --- Unreadable files: counted, named in the log, or an error (data.corrupt_images) -------------

_skipped_lock = threading.Lock()
_skipped: dict[str, None] = {}  # insertion-ordered set of paths


def record_skipped(paths: list[str], mode: str = "skip") -> None:
  """Remembers unreadable files and logs each the first time it is seen; with mode "error", raises."""
  if paths and mode == "error":
    raise DataError(
      f"Unreadable image {paths[0]} ({len(paths)} so far). Repair or remove it, or set "
      "--config.data.corrupt_images=skip to skip unreadable files with a warning."
    )
  with _skipped_lock:
    new = [p for p in paths if p not in _skipped]
    for p in new:
      _skipped[p] = None
    total = len(_skipped)
  for p in new:
    _log.warning("Skipped unreadable image %s (%d unreadable so far)", p, total)


def skipped_files() -> list[str]:
  """Every unreadable image file skipped so far in this process, in order of discovery."""
  with _skipped_lock:
    return list(_skipped)


# --- Decoding into memory with PIL (device path, TF-free evaluation) ----------------------------


def decode_square(path: str, size: int) -> np.ndarray:
  """uint8 [size, size, 3]: the file's shorter side resized to `size` (PIL bilinear, antialiased when
  shrinking), then its centre square."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  with Image.open(path) as image:
    image = image.convert("RGB")
    w, h = image.size
    scale = size / min(w, h)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    image = image.resize((new_w, new_h), Image.BILINEAR)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return np.asarray(image.crop((left, top, left + size, top + size)), np.uint8)


def decode_all(paths: np.ndarray, size: int, mode: str) -> tuple[np.ndarray, np.ndarray]:
  """uint8 [n, size, size, 3] of the readable files and their indices into `paths` (threads: PIL releases
  the GIL while decoding). Unreadable files are recorded (mode "skip") or raise (mode "error")."""
  out = np.empty((len(paths), size, size, 3), np.uint8)
  ok = np.zeros(len(paths), bool)

  def one(i):
    try:
      out[i] = decode_square(str(paths[i]), size)
      ok[i] = True
    except (OSError, ValueError, SyntaxError):  # PIL's errors for unreadable, truncated or odd files
      pass

  with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
    list(pool.map(one, range(len(paths))))
  bad = np.flatnonzero(~ok)
  record_skipped([str(paths[i]) for i in bad], mode)
  if len(bad):
    _log.warning("Dropped %d unreadable images of %d", len(bad), len(paths))
  kept = np.flatnonzero(ok)
  return out[kept] if len(bad) else out, kept
