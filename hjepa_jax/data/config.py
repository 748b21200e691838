"""Default `config.data` subtree: every knob of the input pipelines lives here.

Fields that default to None are `placeholder`s so they can still be set from
the command line (`--config.data.cifar10_dir=/path`).
"""

import ml_collections
from ml_collections import config_dict


def default_data_config() -> ml_collections.ConfigDict:
  """Returns the data config with every key the data package reads."""
  c = ml_collections.ConfigDict()

  # Pretraining mixture: a tuple of strings "name[@split][:weight]". Names:
  # "cifar10" / "stl10" / "imagenet100_tfds" (TFDS; the last: imagenet2012's 100
  # ImageNet-100 classes, stored as squares like image folders), "cifar10_local" / "cifar100_local" (python-pickle
  # folders), "stl10_local" (stl10_binary/ folder), "fashion_mnist_local" (its
  # gzipped idx files; 28 px grey), "image_folder" (your own
  # ROOT/<split>/<class>/*.jpg), "imagenet100" (an ImageNet folder, 100 CMC
  # classes), "digits" (bundled with scikit-learn).
  # Split defaults to "train" ("unlabelled+train" for stl10*); weights (> 0,
  # default 1) are normalised. Strings keep the config freezable. Example:
  # --config.data.datasets='("stl10:0.8", "cifar10_local@train:0.2")'
  c.datasets = ("cifar10_local@train:1.0",)
  # Draws in one pretraining epoch; unset: the sum of the mixed datasets' sizes. Set it to keep an
  # epoch-based schedule (total_epochs, warmup, checkpoints) the same length when datasets join the mixture,
  # e.g. 50000 (CIFAR-10's epoch) with a second dataset mixed in; the weights still share the draws.
  c.epoch_examples = config_dict.placeholder(int)
  # Output side length in pixels of every image the pipelines deliver.
  c.image_size = 32
  # GLOBAL batch size (all hosts together) of one optimizer micro-batch.
  c.batch_size = 256

  # Folder with the CIFAR-10 python-pickle layout (data_batch_1..5,
  # test_batch); when unset, the HJEPA_CIFAR10_DIR environment variable.
  c.cifar10_dir = config_dict.placeholder(str)
  # Folder with the CIFAR-100 python-pickle layout (train, test, meta); when
  # unset, the HJEPA_CIFAR100_DIR environment variable.
  c.cifar100_dir = config_dict.placeholder(str)
  # Folder with the STL-10 binary layout (train_X.bin, train_y.bin, test_X.bin,
  # test_y.bin, unlabeled_X.bin); when unset, the HJEPA_STL10_DIR environment variable.
  c.stl10_dir = config_dict.placeholder(str)
  # Folder with Fashion-MNIST's gzipped idx files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,
  # t10k-*); when unset, the HJEPA_FASHION_MNIST_DIR environment variable.
  c.fashion_mnist_dir = config_dict.placeholder(str)
  # Dataset "image_folder": your own images, ROOT/<split>/<class>/*.{jpg,jpeg,png}
  # with splits train and optionally val and test ("test" means val without a test/).
  c.image_folder = ml_collections.ConfigDict(
    dict(
      dir=config_dict.placeholder(str),  # ROOT
      # Text file, one class folder name per line, label = line index; unset:
      # the sorted folder names of ROOT/train. Unlisted folders are ignored.
      classes_file=config_dict.placeholder(str),
      # Where ROOT has no val/: this fraction of each train class (fixed seed)
      # becomes "val" and leaves "train". 0: no hold-out.
      val_fraction=0.0,
    )
  )
  # Unreadable image files of image folders: "skip" (counted; each named in a
  # warning; the next readable file stands in during pretraining) or "error".
  c.corrupt_images = "skip"
  # ImageNet root with train/<wnid>/*.JPEG and val/<wnid>/*.JPEG; only the
  # 100 CMC classes are read, so a full ImageNet folder works too.
  c.imagenet100_dir = config_dict.placeholder(str)
  # TFDS data_dir for "cifar10" / "stl10" / "imagenet100_tfds"; unset means TFDS's default
  # (~/tensorflow_datasets or $TFDS_DATA_DIR).
  c.tfds_data_dir = config_dict.placeholder(str)
  # Let TFDS download and prepare missing datasets (needs network).
  c.download = False
  # In-memory datasets with images larger than this are downscaled once at
  # load time to save RAM (STL-10 unlabelled is 2.8 GB at 96 px); unset keeps
  # native resolution.
  c.max_stored_size = config_dict.placeholder(int)

  # Input path: "tfdata" (TensorFlow on the host CPU) or "device" (uint8 images held on the
  # accelerator(s), batches selected and augmented inside jit; image folders are decoded once into
  # memory as squares of max_stored_size, else image_size, pixels; needs no TensorFlow except for
  # the TFDS datasets). See docs/data.md "Input pipelines".
  c.pipeline = "tfdata"
  # tf.data map parallelism; -1 means tf.data.AUTOTUNE.
  c.num_parallel_calls = -1
  # Batches prefetched ahead of the training loop (0: none, -1: AUTOTUNE).
  c.prefetch = 2

  # Random-resized-crop area fraction range (I-JEPA default).
  c.crop_scale = (0.3, 1.0)
  # Random-resized-crop aspect ratio range (w/h).
  c.crop_ratio = (3.0 / 4.0, 4.0 / 3.0)
  # Random horizontal flips; I-JEPA's released configs leave them off.
  c.horizontal_flip = False
  # DeiT-III "3-Augment" strength: 0 is off; 1 picks one of grayscale /
  # solarize / gaussian blur per image and adds colour jitter of 0.3.
  c.deit3_strength = 0.0
  # Multi-crop (DINO style) local views, delivered as batch["local"] next to
  # the global view(s); aspect range, flips and 3-Augment as for global views.
  c.multicrop = ml_collections.ConfigDict(
    dict(
      num_local=0,  # extra small crops per image (0: off)
      local_size=96,  # their side length in pixels (<= image_size)
      local_scale=(0.05, 0.3),  # their random-resized-crop area fraction range
    )
  )

  # Labelled dataset the evaluators (k-NN, linear probe) use.
  c.eval_dataset = "cifar10_local"
  # Split the evaluators fit on.
  c.eval_split_train = "train"
  # Split the evaluators report on (image folders: "test" means "val" where
  # there is no test/ folder).
  c.eval_split_test = "test"
  # Cap on examples per evaluation split (a fixed random subset); unset
  # means the whole split.
  c.eval_max_examples = config_dict.placeholder(int)
  # Evaluation preprocessing: resize the shorter side to
  # image_size / eval_crop_fraction, then centre-crop image_size
  # (0.875 is the usual ImageNet choice; 1.0 keeps the whole square).
  c.eval_crop_fraction = 1.0
  return c
