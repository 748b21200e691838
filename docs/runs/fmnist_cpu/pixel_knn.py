"""k-NN@20 on raw pixels of an image folder, the reference point for BENCHMARKS.md's Fashion-MNIST section:

    python docs/runs/fmnist_cpu/pixel_knn.py /data/fmnist     # the folder make_folder.py wrote

The project's weighted k-NN (hjepa_jax.evaluation.knn: cosine similarity, T=0.07) on the native pixels
scaled to [0, 1] (grayscale read as RGB, as the pipelines read it: the same cosines), as written and with the
train split's mean image subtracted; train split as the bank,
the whole val split scored, as launch/evaluate.py scores encoder features.
"""

import json
import sys

import numpy as np

from hjepa_jax.data.folders import FolderSpec, decode_all, scan_folder
from hjepa_jax.evaluation.knn import knn_classify

NATIVE_SIZE = 28  # Fashion-MNIST's: the pixels as written, no resizing


def load(root, split):
  """The split's images as [n, pixels] in [0, 1] and their labels, listed and decoded as the project reads an
  image folder (data.image_folder.dir=root), so labels and files match launch/evaluate.py's."""
  spec = FolderSpec("image_folder", root, None, "the sorted folder names of train/", 0.0, "image_folder.dir")
  paths, labels = scan_folder(spec, split)
  images, _ = decode_all(paths, NATIVE_SIZE, "error")
  return images.reshape(len(images), -1).astype(np.float32) / 255.0, labels


def main(root):
  (x_train, y_train), (x_val, y_val) = load(root, "train"), load(root, "val")
  mean = x_train.mean(0)
  scores = {
    "raw_pixels": knn_classify(x_train, y_train, x_val, y_val, num_classes=10, ks=(20,))["knn_top1_k20"],
    "centred_pixels": knn_classify(x_train - mean, y_train, x_val - mean, y_val, num_classes=10, ks=(20,))[
      "knn_top1_k20"
    ],
  }
  print(json.dumps(scores))


if __name__ == "__main__":
  main(sys.argv[1])
