"""Datasets offline from their official release files: STL-10 binaries, CIFAR-100 pickles and Fashion-MNIST idx
files, found by config key or environment variable, on both input paths."""

import gzip

import numpy as np
import pytest

import hjepa_jax.data as data
from hjepa_jax.data import archives
from tests._data import data_cfg as _cfg
from tests._data import fresh_cache  # noqa: F401  (autouse: an empty dataset cache per test)
from tests._data import write_fake_cifar100, write_fake_fashion_mnist, write_fake_stl10


def test_stl10_binary_layout_is_column_major(tmp_path):
  written = write_fake_stl10(tmp_path, {"train": 3, "test": 2, "unlabelled": 4})
  raw = np.fromfile(tmp_path / "train_X.bin", np.uint8)
  n, c, row, col = 1, 2, 5, 70  # image 1, blue, row 5, column 70: rows vary fastest within a plane
  assert written["train"][0][n, row, col, c] == raw[n * 3 * 96 * 96 + c * 96 * 96 + col * 96 + row]
  for split, (images, labels) in written.items():
    x, y = archives.load_stl10(tmp_path, split)
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(y, labels)
  assert archives.load_stl10(tmp_path, "unlabelled")[1].tolist() == [-1] * 4


def test_stl10_local_from_env_var_pretrains_on_unlabelled_and_train(tmp_path, monkeypatch):
  written = write_fake_stl10(tmp_path, {"train": 3, "test": 2, "unlabelled": 5})
  monkeypatch.setenv("HJEPA_STL10_DIR", str(tmp_path))
  cfg = _cfg(datasets=("stl10_local",), eval_dataset="stl10_local", image_size=24, batch_size=4)
  assert data.pretrain_num_examples(cfg) == 8  # default split unlabelled+train
  x, y = data.load_labelled("stl10_local", "test", cfg, image_size=96)
  np.testing.assert_array_equal(x, written["test"][0])
  np.testing.assert_array_equal(y, written["test"][1])
  for pipeline in ("tfdata", "device"):
    cfg.pipeline = pipeline
    it = data.make_device_iterator(cfg, seed=0) if pipeline == "device" else data.make_pretrain_iterator(cfg, seed=0)
    assert np.asarray(next(it)["image"]).shape == (4, 24, 24, 3)


def test_stl10_local_missing_files_name_them_and_the_key(tmp_path):
  write_fake_stl10(tmp_path, {"train": 2, "test": 2})  # no unlabeled_X.bin
  cfg = _cfg(stl10_dir=str(tmp_path), datasets=("stl10_local",))
  assert len(data.load_labelled("stl10_local", "train", cfg)[1]) == 2  # labelled splits need only their files
  with pytest.raises(data.DataError, match=r"missing unlabeled_X.bin.*data.stl10_dir.*HJEPA_STL10_DIR"):
    data.pretrain_num_examples(cfg)
  with pytest.raises(data.DataError, match="No folder configured for dataset 'stl10_local'"):
    data.load_labelled("stl10_local", "train", _cfg())
  (tmp_path / "test_y.bin").write_bytes(b"\x01\x0b")  # 2 labels, one out of 1..10
  with pytest.raises(data.DataError, match="values must be 1..10"):
    data.load_labelled("stl10_local", "test", cfg)


def test_cifar100_local_reads_fine_labels(tmp_path, monkeypatch):
  written = write_fake_cifar100(tmp_path, {"train": 12, "test": 6})
  cfg = _cfg(cifar100_dir=str(tmp_path), datasets=("cifar100_local",), eval_dataset="cifar100_local", batch_size=4)
  for split in ("train", "test"):
    x, y = data.load_labelled("cifar100_local", split, cfg)
    np.testing.assert_array_equal(x, written[split][0])
    np.testing.assert_array_equal(y, written[split][1])
  assert data.num_classes("cifar100_local") == 100
  assert np.asarray(next(data.make_pretrain_iterator(cfg, seed=0))["image"]).shape == (4, 32, 32, 3)
  data.clear_cache()
  monkeypatch.setenv("HJEPA_CIFAR100_DIR", str(tmp_path))
  assert data.pretrain_num_examples(_cfg(datasets=("cifar100_local",))) == 12
  (tmp_path / "meta").unlink()
  data.clear_cache()
  with pytest.raises(data.DataError, match=r"missing meta.*cifar-100-python"):
    data.pretrain_num_examples(_cfg(datasets=("cifar100_local",)))


def test_fashion_mnist_local_reads_idx_files_as_grey_rgb(tmp_path, monkeypatch):
  written = write_fake_fashion_mnist(tmp_path, {"train": 6, "test": 3})
  monkeypatch.setenv("HJEPA_FASHION_MNIST_DIR", str(tmp_path))
  cfg = _cfg(datasets=("fashion_mnist_local",), eval_dataset="fashion_mnist_local", batch_size=2)
  assert data.pretrain_num_examples(cfg) == 6 and data.num_classes("fashion_mnist_local") == 10
  for split, (grey, labels) in written.items():
    x, y = data.load_labelled("fashion_mnist_local", split, cfg, image_size=28)
    np.testing.assert_array_equal(x, np.repeat(grey[..., None], 3, axis=-1))  # native size: no resampling
    np.testing.assert_array_equal(y, labels)
  for pipeline in ("tfdata", "device"):  # 28 px sources cropped and resized to image_size on both paths
    cfg.pipeline = pipeline
    it = data.make_device_iterator(cfg, seed=0) if pipeline == "device" else data.make_pretrain_iterator(cfg, seed=0)
    assert np.asarray(next(it)["image"]).shape == (2, 32, 32, 3)


def test_fashion_mnist_local_bad_files_say_what_to_do(tmp_path):
  with pytest.raises(data.DataError, match=r"missing train-images.*data.fashion_mnist_dir.*dataset-fashion-mnist"):
    data.pretrain_num_examples(_cfg(fashion_mnist_dir=str(tmp_path), datasets=("fashion_mnist_local",)))
  write_fake_fashion_mnist(tmp_path, {"train": 4})
  with gzip.open(tmp_path / "train-labels-idx1-ubyte.gz", "wb") as f:  # 3 labels for 4 images
    f.write(bytes([0, 0, 8, 1]) + np.asarray([3], ">u4").tobytes() + bytes(3))
  with pytest.raises(data.DataError, match="3 labels for the 4 images"):
    data.load_labelled("fashion_mnist_local", "train", _cfg(fashion_mnist_dir=str(tmp_path)))
  data.clear_cache()
  with gzip.open(tmp_path / "train-labels-idx1-ubyte.gz", "wb") as f:  # a header that promises more than follows
    f.write(bytes([0, 0, 8, 1]) + np.asarray([9], ">u4").tobytes() + bytes(4))
  with pytest.raises(data.DataError, match=r"the header says \(9,\), but 4 values follow"):
    data.load_labelled("fashion_mnist_local", "train", _cfg(fashion_mnist_dir=str(tmp_path)))
  data.clear_cache()
  (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(b"not gzip")
  with pytest.raises(data.DataError, match="Cannot read idx file"):
    data.load_labelled("fashion_mnist_local", "train", _cfg(fashion_mnist_dir=str(tmp_path)))


def test_offline_datasets_mix_and_evaluate(tmp_path):
  """stl10_local (downscaled at load) and cifar100_local in one mixture; stl10_local as the eval dataset."""
  write_fake_stl10(tmp_path / "stl", {"train": 4, "test": 4, "unlabelled": 4})
  write_fake_cifar100(tmp_path / "c100", {"train": 8, "test": 2})
  cfg = _cfg(
    stl10_dir=str(tmp_path / "stl"),
    cifar100_dir=str(tmp_path / "c100"),
    datasets=("stl10_local:0.5", "cifar100_local@train:0.5"),
    max_stored_size=48,
    image_size=16,
    batch_size=8,
    pipeline="device",
  )
  assert np.asarray(next(data.make_device_iterator(cfg, seed=0))["image"]).shape == (8, 16, 16, 3)
  evals = data.load_eval_data(_cfg(stl10_dir=str(tmp_path / "stl"), eval_dataset="stl10_local", image_size=16))
  assert evals["train"][0].shape == (4, 16, 16, 3) and evals["test"][1].shape == (4,)


def test_imagenet100_from_tfds_imagenet2012_keeps_the_100_classes(tmp_path):
  """TFDS imagenet2012 (mocked: random images and labels of the 1000 classes) filtered to ImageNet-100."""
  import tensorflow_datasets as tfds

  from hjepa_jax.data import folders

  cfg = _cfg(tfds_data_dir=str(tmp_path), datasets=("imagenet100_tfds",), eval_dataset="imagenet100_tfds")
  cfg.image_size, cfg.batch_size, cfg.pipeline = 16, 4, "device"
  with tfds.testing.mock_data(num_examples=200):
    names = tfds.builder("imagenet2012", data_dir=str(tmp_path)).info.features["label"].names
    x, y = data.load_labelled("imagenet100_tfds", "val", cfg)
    assert x.shape[1:] == (16, 16, 3) and 0 < len(y) < 200 and y.min() >= 0 and y.max() < 100
    kept = {folders.imagenet100_classes()[i] for i in y.tolist()}
    assert kept <= set(names)
    assert np.asarray(next(data.make_device_iterator(cfg, seed=0))["image"]).shape == (4, 16, 16, 3)
