"""Reads and checks every `config.data` key up front, without loading any data.

The trainer calls this before it compiles anything, so a bad value (or a key no code reads) fails
in seconds with the key's name instead of after minutes of data loading.
"""

import numbers
from typing import Any

from hjepa_jax.data import specs
from hjepa_jax.data.errors import DataError


def _require(cond: bool, key: str, message: str) -> None:
  if not cond:
    raise DataError(f"config key 'data.{key}': {message}")


def _pair(value: Any, key: str, lo_bound: float, hi_bound: float | None) -> None:
  _require(len(value) == 2, key, f"needs two numbers (low, high), got {value!r}")
  lo, hi = value
  _require(lo_bound < lo <= hi, key, f"needs {lo_bound} < low <= high, got {tuple(value)}")
  if hi_bound is not None:
    _require(hi <= hi_bound, key, f"high must be <= {hi_bound}, got {hi}")


def _is_int(value: Any) -> bool:
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def read_multicrop(data_cfg: Any) -> tuple[int, int, tuple[float, float]]:
  """Reads and checks all of data.multicrop (also when it is off): (num_local, local_size, local_scale)."""
  mc = data_cfg.multicrop
  num_local, local_size, local_scale = mc.num_local, mc.local_size, mc.local_scale
  _require(_is_int(num_local) and num_local >= 0, "multicrop.num_local",
           f"must be an integer >= 0 (0 turns local views off), got {num_local!r}")
  image_size = data_cfg.image_size
  _require(_is_int(local_size) and local_size >= 2, "multicrop.local_size",
           f"must be an integer >= 2 pixels, got {local_size!r}")
  # Only bounded by image_size when in use: the default 96 px must not fail 32 px runs without local views.
  _require(num_local == 0 or local_size <= image_size, "multicrop.local_size",
           f"must be <= image_size ({image_size}) when num_local > 0, got {local_size}")
  _require(isinstance(local_scale, (tuple, list)), "multicrop.local_scale",
           f"needs two numbers (low, high), got {local_scale!r}")
  _pair(local_scale, "multicrop.local_scale", 0.0, 1.0)
  return int(num_local), int(local_size), (float(local_scale[0]), float(local_scale[1]))


def check_data_config(data_cfg: Any) -> list[specs.DatasetSpec]:
  """Validates every data key; returns the parsed pretraining mixture."""
  mixture = specs.parse_datasets(data_cfg.datasets)
  _require(data_cfg.image_size >= 8, "image_size", f"must be >= 8, got {data_cfg.image_size}")
  _require(data_cfg.batch_size >= 1, "batch_size", f"must be >= 1, got {data_cfg.batch_size}")
  for key in ("cifar10_dir", "imagenet100_dir", "tfds_data_dir"):
    value = data_cfg[key]
    _require(value is None or isinstance(value, str), key, f"must be a path, got {value!r}")
  _require(isinstance(data_cfg.download, bool), "download", "must be True or False")
  stored = data_cfg.max_stored_size
  _require(stored is None or stored >= data_cfg.image_size, "max_stored_size",
           f"must be unset or >= image_size ({data_cfg.image_size}), got {stored}")
  _require(data_cfg.num_parallel_calls == -1 or data_cfg.num_parallel_calls >= 1, "num_parallel_calls",
           f"must be -1 (AUTOTUNE) or >= 1, got {data_cfg.num_parallel_calls}")
  _require(data_cfg.prefetch >= -1, "prefetch", f"must be -1 (AUTOTUNE), 0 or more, got {data_cfg.prefetch}")
  _pair(data_cfg.crop_scale, "crop_scale", 0.0, 1.0)
  _pair(data_cfg.crop_ratio, "crop_ratio", 0.0, None)
  _require(isinstance(data_cfg.horizontal_flip, bool), "horizontal_flip", "must be True or False")
  _require(data_cfg.deit3_strength >= 0, "deit3_strength", f"must be >= 0, got {data_cfg.deit3_strength}")
  read_multicrop(data_cfg)
  name = data_cfg.eval_dataset
  specs.check_name(name)
  splits = specs.labelled_splits(name) + (("test",) if name == "imagenet100" else ())
  for key in ("eval_split_train", "eval_split_test"):
    _require(data_cfg[key] in splits, key, f"{data_cfg[key]!r} is not a labelled split of {name}: {splits}")
  cap = data_cfg.eval_max_examples
  _require(cap is None or cap >= 1, "eval_max_examples", f"must be unset or >= 1, got {cap}")
  _require(0 < data_cfg.eval_crop_fraction <= 1, "eval_crop_fraction",
           f"must be in (0, 1], got {data_cfg.eval_crop_fraction}")
  return mixture
