"""k-NN@20 on raw pixels of an image folder, the reference point for BENCHMARKS.md's Fashion-MNIST section:

    python docs/runs/fmnist_cpu/pixel_knn.py /data/fmnist     # the folder make_folder.py wrote

The project's weighted k-NN (hjepa_jax.evaluation.knn: cosine similarity, T=0.07) on the native pixels
scaled to [0, 1], as written and with the train split's mean image subtracted; train split as the bank,
the whole val split scored, as launch/evaluate.py scores encoder features.
"""

import glob
import json
import os
import sys

import numpy as np
from PIL import Image

from hjepa_jax.evaluation.knn import knn_classify


def load(root, split):
  images, labels = [], []
  for label, folder in enumerate(sorted(glob.glob(os.path.join(root, split, "*")))):
    for path in sorted(glob.glob(os.path.join(folder, "*.png"))):
      images.append(np.asarray(Image.open(path), np.float32).reshape(-1) / 255.0)
      labels.append(label)
  return np.stack(images), np.asarray(labels)


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
