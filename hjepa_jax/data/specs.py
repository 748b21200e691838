"""Dataset names, their splits and class counts, and parsing of `data.datasets`.

Kept free of TensorFlow so configs can be validated cheaply.
"""

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from hjepa_jax.data.errors import DataError

# name -> (number of classes, default pretraining split, labelled splits)
_DATASETS: dict[str, tuple[int, str, tuple[str, ...]]] = {
    "cifar10": (10, "train", ("train", "test")),
    "cifar10_local": (10, "train", ("train", "test")),
    "stl10": (10, "unlabelled+train", ("train", "test")),
    "imagenet100": (100, "train", ("train", "val")),
    "digits": (10, "train", ("train", "test")),
}

DATASET_NAMES = tuple(_DATASETS)


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """One entry of the pretraining mixture, with its weight normalised."""

  name: str
  split: str
  weight: float


def check_name(name: str) -> None:
  if name not in _DATASETS:
    raise DataError(
        f"Unknown dataset {name!r}. Use one of {', '.join(DATASET_NAMES)}."
    )


def num_classes(name: str) -> int:
  """Number of label classes of a labelled dataset."""
  check_name(name)
  return _DATASETS[name][0]


def labelled_splits(name: str) -> tuple[str, ...]:
  check_name(name)
  return _DATASETS[name][2]


def default_pretrain_split(name: str) -> str:
  check_name(name)
  return _DATASETS[name][1]


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
        raise DataError(
            f"Bad dataset entry {entry!r}: the part after ':' must be a number (a weight), e.g. 'stl10:0.8'."
        ) from None
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
  raise DataError(
      f"Bad dataset entry {entry!r}: use a string 'name', 'name:weight', 'name@split' or "
      "'name@split:weight', e.g. 'stl10@unlabelled+train:0.8'."
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
  if not entries:
    raise DataError("config.data.datasets is empty: name at least one dataset, e.g. ('cifar10_local',).")
  specs = []
  for e in entries:
    unknown = set(e) - {"name", "weight", "split"}
    if unknown:
      raise DataError(
          f"Dataset entry {e} has unknown keys {sorted(unknown)}; allowed: name, weight, split."
      )
    if "name" not in e:
      raise DataError(f"Dataset entry {e} has no 'name'.")
    name = str(e["name"])
    check_name(name)
    weight = e.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight <= 0:
      raise DataError(
          f"Dataset {name!r} has weight {weight!r}; weights must be positive finite numbers "
          "(they are normalised to sum to 1). Remove the entry instead of giving it weight 0."
      )
    split = e.get("split") or default_pretrain_split(name)
    specs.append(DatasetSpec(name=name, split=str(split), weight=float(weight)))
  keys = [(s.name, s.split) for s in specs]
  if len(set(keys)) != len(keys):
    raise DataError(f"config.data.datasets lists the same (name, split) twice: {keys}. Merge the entries.")
  total = sum(s.weight for s in specs)
  return [dataclasses.replace(s, weight=s.weight / total) for s in specs]
