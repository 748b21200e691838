"""Input pipelines for H-JEPA pretraining and evaluation (numpy + TensorFlow).

  config.py    the `config.data` keys and their defaults
  catalog.py   DataError and the dataset catalogue (a leaf: imports nothing from the package)
  validate.py  every check of a `config.data` value
  local.py     the `Source` cache: dataset name -> loader
  archives.py  CIFAR-10/100 pickles, STL-10 binaries and Fashion-MNIST idx files from their official release files
  digits.py    scikit-learn's bundled digits, for smoke runs
  folders.py   image folders (image_folder, imagenet100): listing, classes, hold-out, PIL decoding
  sources.py   TFDS datasets and decoding image files in tf.data
  augment.py   TensorFlow image ops: resizing, random-resized crops, flips, 3-Augment, multi-crop views
  order.py     the mixture order (numpy): epoch length, shares by weight, exact resumption
  pipeline.py  the pretraining stream: exact resumption, host split, tf.data
  labelled.py  labelled evaluation splits

Importing this package is cheap: TensorFlow is imported only when a pipeline
or a dataset is first requested, so configs can use `default_data_config`
without paying for it.
"""

from hjepa_jax import lazy
from typing import TYPE_CHECKING

from hjepa_jax.data.config import default_data_config
from hjepa_jax.data.catalog import DATASET_NAMES, DIR_KEYS, DataError
from hjepa_jax.data.validate import num_classes

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


__getattr__, __dir__ = lazy.attributes(__name__, _LAZY)
