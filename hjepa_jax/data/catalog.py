"""DataError and the dataset catalogue: every dataset's name, number of classes, default split, labelled splits,
kind (TFDS, image folder) and config key of its folder.

A leaf: it imports nothing from the package, so every module of `data/` (the loaders included) can name the
error and the datasets without depending on the checks (`validate.py`) or on one another.
"""


class DataError(Exception):
  """A dataset cannot be used as configured.

  Messages say what is wrong and what to do about it, because they are what a
  researcher sees in the log of a run that died at startup.
  """


# name -> (number of classes (None: read from the folder), default pretraining split, labelled splits)
DATASETS: dict[str, tuple[int | None, str, tuple[str, ...]]] = {
  "cifar10": (10, "train", ("train", "test")),
  "cifar10_local": (10, "train", ("train", "test")),
  "cifar100_local": (100, "train", ("train", "test")),
  "stl10": (10, "unlabelled+train", ("train", "test")),
  "stl10_local": (10, "unlabelled+train", ("train", "test")),
  "imagenet100": (100, "train", ("train", "val", "test")),
  "imagenet100_tfds": (100, "train", ("train", "val", "test")),
  "image_folder": (None, "train", ("train", "val", "test")),
  "digits": (10, "train", ("train", "test")),
  "fashion_mnist_local": (10, "train", ("train", "test")),
}

DATASET_NAMES = tuple(DATASETS)
TFDS_NAMES = ("cifar10", "stl10", "imagenet100_tfds")
# Image folders: file lists on the tf.data path, decoded into memory (PIL) on the device path.
FOLDER_NAMES = ("imagenet100", "image_folder")
# The config key holding each dataset's folder (digits: bundled, none).
DIR_KEYS = {
  "cifar10": "tfds_data_dir",
  "stl10": "tfds_data_dir",
  "cifar10_local": "cifar10_dir",
  "cifar100_local": "cifar100_dir",
  "stl10_local": "stl10_dir",
  "imagenet100": "imagenet100_dir",
  "imagenet100_tfds": "tfds_data_dir",
  "image_folder": "image_folder.dir",
  "fashion_mnist_local": "fashion_mnist_dir",
}
