"""Input pipelines for H-JEPA pretraining and evaluation (numpy + TensorFlow, no JAX).

Importing this package is cheap: TensorFlow is imported only when a pipeline
or a dataset is first requested, so configs can use `default_data_config`
without paying for it.
"""

import importlib
from typing import TYPE_CHECKING

from hjepa_jax.data.config import default_data_config
from hjepa_jax.data.constants import IMAGENET_MEAN, IMAGENET_STD
from hjepa_jax.data.errors import DataError
from hjepa_jax.data.specs import DATASET_NAMES, num_classes

_LAZY = {
    "make_pretrain_iterator": "hjepa_jax.data.pipeline",
    "pretrain_num_examples": "hjepa_jax.data.pipeline",
    "PretrainIterator": "hjepa_jax.data.pipeline",
    "load_labelled": "hjepa_jax.data.labelled",
    "load_eval_data": "hjepa_jax.data.labelled",
    "skipped_files": "hjepa_jax.data.files",
    "clear_cache": "hjepa_jax.data.sources",
}

if TYPE_CHECKING:
  from hjepa_jax.data.files import skipped_files
  from hjepa_jax.data.labelled import load_eval_data, load_labelled
  from hjepa_jax.data.pipeline import PretrainIterator, make_pretrain_iterator, pretrain_num_examples
  from hjepa_jax.data.sources import clear_cache

__all__ = [
    "DATASET_NAMES",
    "DataError",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PretrainIterator",
    "clear_cache",
    "default_data_config",
    "load_eval_data",
    "load_labelled",
    "make_pretrain_iterator",
    "num_classes",
    "pretrain_num_examples",
    "skipped_files",
]


def __getattr__(name: str):
  if name in _LAZY:
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
  return sorted(set(globals()) | set(_LAZY))
