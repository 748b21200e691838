"""Every check of a `config.data` value, made once up front (DataError and the dataset catalogue: `catalog.py`,
re-exported here).

The trainer calls `check_data_config` before it compiles anything, and every public entry point of the
package calls it on the config it is given, so a bad value fails in seconds with the key's name instead
of after minutes of data loading. The code that loads, augments and orders data trusts what passed here.
Kept free of TensorFlow so configs can be validated cheaply.
"""

import dataclasses
import math
import numbers
from collections.abc import Mapping
from typing import Any

from hjepa_jax.data.catalog import (  # noqa: F401  (DATASET_NAMES, DIR_KEYS, FOLDER_NAMES, TFDS_NAMES: re-exported)
  DATASET_NAMES,
  DATASETS,
  DIR_KEYS,
  FOLDER_NAMES,
  TFDS_NAMES,
  DataError,
)


PIPELINES = ("tfdata", "device")
CORRUPT_MODES = ("skip", "error")


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """One entry of the pretraining mixture, with its weight normalised."""

  name: str
  split: str
  weight: float


def _fail(message: str, key: str | None = None):
  raise DataError(f"config key 'data.{key}': {message}" if key else message)


def _require(cond: bool, key: str, message: str) -> None:
  if not cond:
    _fail(message, key)


def check_name(name: str, key: str | None = None) -> None:
  """Raises DataError unless `name` is a known dataset (`key`: the config key it came from, if any)."""
  if name not in DATASETS:
    _fail(f"Unknown dataset {name!r}. Use one of {', '.join(DATASET_NAMES)}.", key)


def num_classes(name: str, data_cfg: Any = None) -> int:
  """Number of label classes of a labelled dataset (`data_cfg` locates an image_folder's classes)."""
  check_name(name)
  if DATASETS[name][0] is None:
    if data_cfg is None:
      raise DataError(f"The number of classes of {name!r} depends on its folder: pass the data config.")
    from hjepa_jax.data.folders import num_folder_classes  # pylint: disable=g-import-not-at-top  (numpy; image folders only)

    return num_folder_classes(name, data_cfg)
  return DATASETS[name][0]


def check_labelled_split(name: str, split: str, key: str | None = None) -> None:
  """Raises DataError unless `split` is a labelled split of dataset `name` (image folders: "test" means "val"
  where there is no test/ folder)."""
  check_name(name)
  splits = DATASETS[name][2]
  if split not in splits:
    _fail(f"{name!r} has labelled splits {', '.join(splits)}; {split!r} is not one.", key)


def _parse_entry_string(entry: str) -> dict[str, Any]:
  """'name', 'name:weight', 'name@split' or 'name@split:weight'."""
  body, weight = entry.strip(), None
  head, sep, tail = body.rpartition(":")
  if sep:
    try:
      weight = float(tail)
      body = head
    except ValueError:
      if "@" not in head:  # a ':' outside a split expression must be a weight
        _fail(f"bad entry {entry!r}: the part after ':' must be a number (a weight), e.g. 'stl10:0.8'.", "datasets")
  name, at, split = body.partition("@")
  out: dict[str, Any] = {"name": name.strip()}
  if at:
    out["split"] = split.strip()
  if weight is not None:
    out["weight"] = weight
  return out


def _entry_to_dict(entry: Any) -> dict[str, Any]:
  if isinstance(entry, str):
    return _parse_entry_string(entry)
  if isinstance(entry, Mapping) or hasattr(entry, "to_dict"):
    return dict(entry.to_dict() if hasattr(entry, "to_dict") else entry)
  _fail(
    f"bad entry {entry!r}: use a string 'name', 'name:weight', 'name@split' or 'name@split:weight', "
    "e.g. 'stl10@unlabelled+train:0.8'.",
    "datasets",
  )


def parse_datasets(datasets: Any) -> list[DatasetSpec]:
  """Validates `data.datasets` and returns specs with weights summing to 1.

  Entries are strings ('name[@split][:weight]'); mappings with keys name,
  weight, split are accepted from Python callers too, but keep strings in a
  ConfigDict: dicts inside tuples make it impossible to freeze.
  """
  if isinstance(datasets, (str, Mapping)) or hasattr(datasets, "to_dict"):
    datasets = (datasets,)
  entries = [_entry_to_dict(e) for e in datasets]
  _require(bool(entries), "datasets", "is empty: name at least one dataset, e.g. ('cifar10_local',).")
  specs = []
  for e in entries:
    unknown = set(e) - {"name", "weight", "split"}
    _require(not unknown, "datasets", f"entry {e} has unknown keys {sorted(unknown)}; allowed: name, weight, split.")
    _require("name" in e, "datasets", f"entry {e} has no 'name'.")
    name = str(e["name"])
    check_name(name, "datasets")
    weight = e.get("weight", 1.0)
    _require(
      not isinstance(weight, bool) and isinstance(weight, (int, float)) and math.isfinite(weight) and weight > 0,
      "datasets",
      f"dataset {name!r} has weight {weight!r}; weights must be positive finite numbers "
      "(they are normalised to sum to 1). Remove the entry instead of giving it weight 0.",
    )
    split = e.get("split") or DATASETS[name][1]
    specs.append(DatasetSpec(name=name, split=str(split), weight=float(weight)))
  keys = [(s.name, s.split) for s in specs]
  _require(len(set(keys)) == len(keys), "datasets", f"lists the same (name, split) twice: {keys}. Merge the entries.")
  total = sum(s.weight for s in specs)
  return [dataclasses.replace(s, weight=s.weight / total) for s in specs]


def _pair(value: Any, key: str, lo_bound: float, hi_bound: float | None) -> None:
  _require(isinstance(value, (tuple, list)) and len(value) == 2, key, f"needs two numbers (low, high), got {value!r}")
  lo, hi = value
  _require(lo_bound < lo <= hi, key, f"needs {lo_bound} < low <= high, got {tuple(value)}")
  if hi_bound is not None:
    _require(hi <= hi_bound, key, f"high must be <= {hi_bound}, got {hi}")


def _is_int(value: Any) -> bool:
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_multicrop(data_cfg: Any) -> None:
  """All of data.multicrop, also when it is off."""
  mc = data_cfg.multicrop
  num_local, local_size = mc.num_local, mc.local_size
  _require(
    _is_int(num_local) and num_local >= 0,
    "multicrop.num_local",
    f"must be an integer >= 0 (0 turns local views off), got {num_local!r}",
  )
  _require(
    _is_int(local_size) and local_size >= 2,
    "multicrop.local_size",
    f"must be an integer >= 2 pixels, got {local_size!r}",
  )
  # Only bounded by image_size when in use: the default 96 px must not fail 32 px runs without local views.
  _require(
    num_local == 0 or local_size <= data_cfg.image_size,
    "multicrop.local_size",
    f"must be <= image_size ({data_cfg.image_size}) when num_local > 0, got {local_size}",
  )
  _pair(mc.local_scale, "multicrop.local_scale", 0.0, 1.0)


def check_data_config(data_cfg: Any) -> list[DatasetSpec]:
  """Validates every data key; returns the parsed pretraining mixture."""
  mixture = parse_datasets(data_cfg.datasets)
  _require(data_cfg.image_size >= 8, "image_size", f"must be >= 8, got {data_cfg.image_size}")
  _require(data_cfg.batch_size >= 1, "batch_size", f"must be >= 1, got {data_cfg.batch_size}")
  for key in sorted({k for k in DIR_KEYS.values() if "." not in k}):  # the folder keys (image_folder's: below)
    value = data_cfg[key]
    _require(value is None or isinstance(value, str), key, f"must be a path, got {value!r}")
  folder = data_cfg.image_folder
  for key in ("dir", "classes_file"):
    _require(
      folder[key] is None or isinstance(folder[key], str), f"image_folder.{key}", f"must be a path, got {folder[key]!r}"
    )
  _require(
    0 <= folder.val_fraction < 1,
    "image_folder.val_fraction",
    f"must be in [0, 1) (0: no hold-out; used only where ROOT has no val/ folder), got {folder.val_fraction}",
  )
  _require(
    data_cfg.corrupt_images in CORRUPT_MODES,
    "corrupt_images",
    f"must be 'skip' (unreadable image files skipped with a warning naming them) or 'error', got {data_cfg.corrupt_images!r}",
  )
  _require(isinstance(data_cfg.download, bool), "download", "must be True or False")
  epoch = data_cfg.epoch_examples
  _require(
    epoch is None or (isinstance(epoch, int) and epoch >= 1),
    "epoch_examples",
    f"must be unset (the sum of the mixed datasets' sizes) or a count >= 1, got {epoch!r}",
  )
  stored = data_cfg.max_stored_size
  _require(
    stored is None or stored >= data_cfg.image_size,
    "max_stored_size",
    f"must be unset or >= image_size ({data_cfg.image_size}), got {stored}",
  )
  _require(
    data_cfg.num_parallel_calls == -1 or data_cfg.num_parallel_calls >= 1,
    "num_parallel_calls",
    f"must be -1 (AUTOTUNE) or >= 1, got {data_cfg.num_parallel_calls}",
  )
  _require(data_cfg.pipeline in PIPELINES, "pipeline", f"must be one of {PIPELINES}, got {data_cfg.pipeline!r}")
  _require(data_cfg.prefetch >= -1, "prefetch", f"must be -1 (AUTOTUNE), 0 or more, got {data_cfg.prefetch}")
  _pair(data_cfg.crop_scale, "crop_scale", 0.0, 1.0)
  _pair(data_cfg.crop_ratio, "crop_ratio", 0.0, None)
  _require(isinstance(data_cfg.horizontal_flip, bool), "horizontal_flip", "must be True or False")
  _require(
    math.isfinite(data_cfg.deit3_strength) and data_cfg.deit3_strength >= 0,
    "deit3_strength",
    f"must be >= 0 (0 turns 3-Augment off), got {data_cfg.deit3_strength}",
  )
  _check_multicrop(data_cfg)
  name = data_cfg.eval_dataset
  check_name(name, "eval_dataset")
  for key in ("eval_split_train", "eval_split_test"):
    check_labelled_split(name, data_cfg[key], key)
  cap = data_cfg.eval_max_examples
  _require(cap is None or cap >= 1, "eval_max_examples", f"must be unset or >= 1, got {cap}")
  _require(
    0 < data_cfg.eval_crop_fraction <= 1, "eval_crop_fraction", f"must be in (0, 1], got {data_cfg.eval_crop_fraction}"
  )
  return mixture
