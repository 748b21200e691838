"""Fashion-MNIST as an image folder for configs/folder.py: BENCHMARKS.md "Fashion-MNIST" reads it.

    apt-get download dataset-fashion-mnist && dpkg-deb -x dataset-fashion-mnist_*.deb fm   # Debian's copy
    python docs/runs/fmnist_cpu/make_folder.py fm/usr/share/datasets/fashion-mnist /data/fmnist

Writes ROOT/train/<k>_<class>/NNNN.png (the first 946 train images of each class: 9,460, the size of
Imagenette and of the CIFAR-10 stand-in above it) and ROOT/val/... (the WHOLE test split, 10,000), as the
native 28 px grayscale PNGs: the pipeline converts them to RGB and resizes them to the config's image_size.
"""

import gzip
import os
import sys

import numpy as np
from PIL import Image

CLASSES = ("T-shirt_top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle_boot")
TRAIN_PER_CLASS = 946


def read_idx(path, header_bytes):
  with gzip.open(path) as f:
    return np.frombuffer(f.read(), np.uint8, offset=header_bytes)


def main(src, root):
  for split, stem, per_class in (("train", "train", TRAIN_PER_CLASS), ("val", "t10k", None)):
    images = read_idx(os.path.join(src, f"{stem}-images-idx3-ubyte.gz"), 16).reshape(-1, 28, 28)
    labels = read_idx(os.path.join(src, f"{stem}-labels-idx1-ubyte.gz"), 8)
    for k, name in enumerate(CLASSES):
      folder = os.path.join(root, split, f"{k}_{name}")
      os.makedirs(folder, exist_ok=True)
      for n, i in enumerate(np.flatnonzero(labels == k)[:per_class]):
        Image.fromarray(images[i], "L").save(os.path.join(folder, f"{n:04d}.png"))


if __name__ == "__main__":
  main(*sys.argv[1:3])
