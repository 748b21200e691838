"""Fashion-MNIST as an image folder for configs/folder.py: BENCHMARKS.md "Fashion-MNIST" reads it.

    apt-get download dataset-fashion-mnist && dpkg-deb -x dataset-fashion-mnist_*.deb fm   # Debian's copy
    python docs/runs/fmnist_cpu/make_folder.py fm/usr/share/datasets/fashion-mnist /data/fmnist

Writes ROOT/train/<k>_<class>/NNNN.png (the first 946 train images of each class: 9,460, the size of
Imagenette and of the CIFAR-10 stand-in above it) and ROOT/val/... (the WHOLE test split, 10,000), as the
native 28 px grayscale PNGs: the pipeline converts them to RGB and resizes them to the config's image_size.
(Dataset `fashion_mnist_local` reads the same files directly, all 60,000 train images.)
"""

import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from hjepa_jax.data.archives import LOCAL_DIRS, load_idx_pair

CLASSES = ("T-shirt_top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle_boot")
TRAIN_PER_CLASS = 946


def main(src, root):
  files = LOCAL_DIRS["fashion_mnist_local"].split_files  # the reader of dataset fashion_mnist_local
  for split, stem, per_class in (("train", "train", TRAIN_PER_CLASS), ("val", "test", None)):
    images, labels = load_idx_pair(Path(src), *files[stem])
    images = images[..., 0]  # grey
    for k, name in enumerate(CLASSES):
      folder = os.path.join(root, split, f"{k}_{name}")
      os.makedirs(folder, exist_ok=True)
      for n, i in enumerate(np.flatnonzero(labels == k)[:per_class]):
        Image.fromarray(images[i], "L").save(os.path.join(folder, f"{n:04d}.png"))


if __name__ == "__main__":
  main(*sys.argv[1:3])
