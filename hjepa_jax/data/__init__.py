"""Input pipelines for H-JEPA pretraining and evaluation (numpy + TensorFlow).

  config.py    the `config.data` keys and their defaults
  validate.py  DataError, the dataset catalogue, and every check of a `config.data` value
  local.py     the `Source` cache: dataset name -> loader; digits
  archives.py  CIFAR-10/100 pickles and STL-10 binaries from their official release files
  folders.py   image folders (image_folder, imagenet100): listing, classes, hold-out, PIL decoding
  sources.py   TFDS datasets and decoding image files in tf.data
  augment.py   TensorFlow image ops: resizing, random-resized crops, flips, 3-Augment, multi-crop views
  pipeline.py  the pretraining stream: mixture order, exact resumption, host split, tf.data
  labelled.py  labelled evaluation splits

Importing this package is cheap: TensorFlow is imported only when a pipeline
or a dataset is first requested, so configs can use `default_data_config`
without paying for it.
"""

import importlib
from typing import TYPE_CHECKING

from hjepa_jax.data.config import default_data_config
from hjepa_jax.data.validate import DATASET_NAMES, DIR_KEYS, DataError, num_classes

_LAZY = {
  "make_pretrain_iterator": "hjepa_jax.data.pipeline",
  "pretrain_num_examples": "hjepa_jax.data.order",
  "make_device_iterator": "hjepa_jax.data.device",
  "PretrainIterator": "hjepa_jax.data.pipeline",
  "load_labelled": "hjepa_jax.data.labelled",
  "load_eval_data": "hjepa_jax.data.labelled",
  "skipped_files": "hjepa_jax.data.folders",
  "clear_cache": "hjepa_jax.data.local",
}

if TYPE_CHECKING:
  from hjepa_jax.data.device import make_device_iterator
  from hjepa_jax.data.labelled import load_eval_data, load_labelled
  from hjepa_jax.data.local import clear_cache
  from hjepa_jax.data.order import pretrain_num_examples
  from hjepa_jax.data.pipeline import PretrainIterator, make_pretrain_iterator
  from hjepa_jax.data.folders import skipped_files

__all__ = [
  "DATASET_NAMES",
  "DIR_KEYS",
  "DataError",
  "PretrainIterator",
  "clear_cache",
  "default_data_config",
  "load_eval_data",
  "load_labelled",
  "make_device_iterator",
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
