"""Dataset loading: local CIFAR-10 pickles, digits, ImageNet-100 folders, TFDS (mocked), offline errors."""

import os
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds

import hjepa_jax.data as data
from hjepa_jax.data import archives, digits, folders, sources
from tests._data import data_cfg as _cfg
from tests._data import fresh_cache  # noqa: F401  (autouse: an empty dataset cache per test)
from tests._data import write_fake_cifar10, write_fake_imagenet

REAL_CIFAR10 = os.environ.get("HJEPA_CIFAR10_DIR")
needs_real_cifar = pytest.mark.skipif(
  not (REAL_CIFAR10 and Path(REAL_CIFAR10, "data_batch_1").is_file()),
  reason="set HJEPA_CIFAR10_DIR to a cifar-10-batches-py folder to test on the real CIFAR-10",
)


# --- CIFAR-10, python-pickle layout ---------------------------------------------------------


def test_local_cifar10_reads_generated_pickles(tmp_path):
  images, labels = write_fake_cifar10(tmp_path, per_batch=6)
  cfg = _cfg(cifar10_dir=str(tmp_path))
  x, y = data.load_labelled("cifar10_local", "train", cfg)
  assert x.shape == (30, 32, 32, 3) and x.dtype == np.uint8 and y.dtype == np.int32
  np.testing.assert_array_equal(x, images)
  np.testing.assert_array_equal(y, labels)
  # A known pixel: image 7 (2nd of data_batch_2), row 3, column 5, is what the writer put there.
  assert tuple(x[7, 3, 5]) == tuple(images[7, 3, 5])
  xt, yt = data.load_labelled("cifar10_local", "test", cfg)
  assert xt.shape == (6, 32, 32, 3) and set(yt) <= set(range(10))


def test_local_cifar10_channel_layout(tmp_path):
  """Rows are 1024 red, 1024 green, then 1024 blue values."""
  write_fake_cifar10(tmp_path, per_batch=2)
  raw = archives._read_cifar10_batch(tmp_path / "data_batch_1")
  import pickle

  with open(tmp_path / "data_batch_1", "rb") as f:
    row = pickle.load(f, encoding="bytes")[b"data"][0]
  red, green, blue = row[:1024].reshape(32, 32), row[1024:2048].reshape(32, 32), row[2048:].reshape(32, 32)
  np.testing.assert_array_equal(raw[0][0], np.stack([red, green, blue], -1))


def test_local_cifar10_missing_files_say_what_to_do(tmp_path):
  write_fake_cifar10(tmp_path, per_batch=2)
  (tmp_path / "data_batch_3").unlink()
  with pytest.raises(data.DataError, match=r"missing data_batch_3.*--config.data.cifar10_dir"):
    data.load_labelled("cifar10_local", "train", _cfg(cifar10_dir=str(tmp_path)))


def test_local_cifar10_falls_back_to_env_var(tmp_path, monkeypatch):
  write_fake_cifar10(tmp_path, per_batch=2)
  monkeypatch.setenv(archives.CIFAR10_ENV_VAR, str(tmp_path))
  assert data.load_labelled("cifar10_local", "test", _cfg())[0].shape == (2, 32, 32, 3)
  monkeypatch.delenv(archives.CIFAR10_ENV_VAR)
  data.clear_cache()
  with pytest.raises(data.DataError, match="HJEPA_CIFAR10_DIR"):
    data.load_labelled("cifar10_local", "test", _cfg())


def test_local_cifar10_rejects_code_in_pickles(tmp_path):
  write_fake_cifar10(tmp_path, per_batch=2)
  import pickle

  with open(tmp_path / "test_batch", "wb") as f:
    pickle.dump({b"data": os.system, b"labels": []}, f)
  with pytest.raises(data.DataError, match="not allowed"):
    data.load_labelled("cifar10_local", "test", _cfg(cifar10_dir=str(tmp_path)))


def test_md5_check_flags_files_that_are_not_the_release(tmp_path):
  write_fake_cifar10(tmp_path, per_batch=2)
  with pytest.raises(data.DataError, match="md5"):
    archives.verify_cifar10_md5(tmp_path)


@needs_real_cifar
def test_real_cifar10_copy():
  root = archives.resolve_cifar10_dir(REAL_CIFAR10)
  x, y = data.load_labelled("cifar10_local", "test", _cfg(cifar10_dir=str(root)), max_examples=200)
  assert x.shape == (200, 32, 32, 3) and x.dtype == np.uint8
  assert y.min() >= 0 and y.max() <= 9 and len(np.unique(y)) == 10
  assert 60 < x.mean() < 200  # natural images, not zeros or noise-free constants
  full_x, full_y = archives.load_cifar10(root, "test")
  assert full_x.shape == (10000, 32, 32, 3) and np.bincount(full_y).tolist() == [1000] * 10


@needs_real_cifar
def test_real_cifar10_md5():
  archives.verify_cifar10_md5(Path(REAL_CIFAR10))


# --- digits ----------------------------------------------------------------------------------


def test_digits_split_is_fixed_stratified_and_disjoint():
  cfg = _cfg()
  xtr, ytr = data.load_labelled("digits", "train", cfg)
  xte, yte = data.load_labelled("digits", "test", cfg)
  assert xtr.shape == (1433, 32, 32, 3) and xte.shape == (364, 32, 32, 3)
  assert xtr.dtype == np.uint8 and ytr.dtype == np.int32
  test_fraction = np.bincount(yte) / (np.bincount(yte) + np.bincount(ytr))
  assert np.all(np.abs(test_fraction - 0.2) < 0.02)
  np.testing.assert_array_equal(data.load_labelled("digits", "test", cfg)[0], xte)
  train_rows = {x.tobytes() for x in xtr}
  assert sum(x.tobytes() in train_rows for x in xte) < 10  # only genuine duplicate digits
  assert np.all(xtr[..., 0] == xtr[..., 2])  # grey replicated to RGB
  assert xtr.max() == 255


def test_digits_resized_and_subsampled():
  x, y = data.load_labelled("digits", "train", _cfg(), image_size=48, max_examples=100)
  assert x.shape == (100, 48, 48, 3) and y.shape == (100,)
  x2, y2 = data.load_labelled("digits", "train", _cfg(), image_size=48, max_examples=100)
  np.testing.assert_array_equal(x, x2)
  assert len(np.unique(y)) == 10  # a random subset, not the first 100 in class order
  full, _ = digits.load_digits("train")
  assert full.shape[0] == 1433


# --- ImageNet-100 image folders ----------------------------------------------------------------


def test_imagenet100_class_list_is_the_cmc_subset():
  wnids = folders.imagenet100_classes()
  assert len(wnids) == 100 == len(set(wnids))
  assert wnids[:3] == ("n02869837", "n01749939", "n02488291") and wnids[-1] == "n02090622"
  assert all(len(w) == 9 and w[0] == "n" and w[1:].isdigit() for w in wnids)


def test_imagenet100_folder_skips_and_counts_corrupt_files(tmp_path):
  written = write_fake_imagenet(tmp_path, class_indices=(0, 5, 99), per_class=3, corrupt=("val",))
  (tmp_path / "val" / "n99999999").mkdir()  # a class outside the subset is ignored
  (tmp_path / "val" / "n99999999" / "x.JPEG").write_bytes(b"junk")
  before = len(data.skipped_files())
  cfg = _cfg(imagenet100_dir=str(tmp_path))
  x, y = data.load_labelled("imagenet100", "val", cfg, image_size=24)
  assert x.shape == (9, 24, 24, 3) and x.dtype == np.uint8
  assert sorted(y.tolist()) == sorted(label for _, label in written["val"]) == [0] * 3 + [5] * 3 + [99] * 3
  skipped = data.skipped_files()
  assert len(skipped) == before + 1 and skipped[-1].endswith("corrupt.JPEG")
  assert data.load_labelled("imagenet100", "test", cfg, image_size=24)[0].shape[0] == 9  # "test" = "val"


def test_imagenet100_labelled_image_matches_file(tmp_path):
  written = write_fake_imagenet(tmp_path, class_indices=(3,), per_class=1, size=(32, 32))
  x, y = data.load_labelled("imagenet100", "train", _cfg(imagenet100_dir=str(tmp_path)), image_size=32)
  from PIL import Image

  expected = np.asarray(Image.open(written["train"][0][0]).convert("RGB")).astype(int)
  diff = np.abs(x[0].astype(int) - expected)  # libjpeg builds differ by a few levels
  assert diff.mean() < 2 and diff.max() <= 12
  assert y.tolist() == [3]


def test_imagenet100_pretraining_replaces_corrupt_files_and_keeps_batch_size(tmp_path):
  write_fake_imagenet(tmp_path, class_indices=(0, 1, 2), per_class=3, corrupt=("train",))
  cfg = _cfg(imagenet100_dir=str(tmp_path), datasets=("imagenet100@train",), batch_size=5, image_size=16)
  assert data.pretrain_num_examples(cfg) == 10
  it = data.make_pretrain_iterator(cfg, seed=0)
  batches = [next(it)["image"] for _ in range(4)]  # two epochs, so the corrupt file is drawn
  assert all(b.shape == (5, 16, 16, 3) and b.dtype == np.uint8 for b in batches)
  assert len(it.skipped_files) == 1 and it.skipped_files[0].endswith("corrupt.JPEG")
  assert it.skipped_files[0] in data.skipped_files()
  resumed = data.make_pretrain_iterator(cfg, seed=0, start_step=2)
  np.testing.assert_array_equal(next(resumed)["image"], batches[2])


def test_imagenet100_missing_folder_errors(tmp_path):
  with pytest.raises(data.DataError, match="imagenet100_dir"):
    data.load_labelled("imagenet100", "val", _cfg())
  with pytest.raises(data.DataError, match="does not exist"):
    data.load_labelled("imagenet100", "val", _cfg(imagenet100_dir=str(tmp_path)))
  (tmp_path / "val").mkdir()
  data.clear_cache()  # folder listings are cached per process
  with pytest.raises(data.DataError, match="No images"):
    data.load_labelled("imagenet100", "val", _cfg(imagenet100_dir=str(tmp_path)))


def test_all_candidates_unreadable_is_an_error_not_a_short_batch(tmp_path):
  class_dir = tmp_path / "train" / folders.imagenet100_classes()[0]
  class_dir.mkdir(parents=True)
  for i in range(sources.MAX_CONSECUTIVE_BAD + 1):
    (class_dir / f"bad{i}.JPEG").write_bytes(b"junk")
  cfg = _cfg(imagenet100_dir=str(tmp_path), datasets=("imagenet100",), batch_size=2, image_size=8)
  with pytest.raises(data.DataError, match="consecutive unreadable"):
    next(data.make_pretrain_iterator(cfg, seed=0))


# --- TFDS (mocked: no network, nothing prepared) -----------------------------------------------


@pytest.mark.parametrize("name, native", [("cifar10", 32), ("stl10", 96)])
def test_tfds_datasets_under_mock(name, native, tmp_path):
  cfg = _cfg(tfds_data_dir=str(tmp_path), datasets=(name,), batch_size=8, image_size=24)
  with tfds.testing.mock_data(num_examples=20):
    x, y = data.load_labelled(name, "test", cfg)
    assert x.shape == (20, 24, 24, 3) and x.dtype == np.uint8
    assert y.dtype == np.int32 and y.min() >= 0 and y.max() < data.num_classes(name)
    assert data.pretrain_num_examples(cfg) == 20
    it = data.make_pretrain_iterator(cfg, seed=1)
    batch = next(it)
    assert set(batch) == {"image"}
    assert batch["image"].shape == (8, 24, 24, 3) and batch["image"].dtype == np.uint8
    raw, _ = sources.load_tfds(name, "train", data_dir=str(tmp_path), download=False)
    assert raw.shape == (20, native, native, 3)


def test_tfds_max_stored_size_shrinks_at_load(tmp_path):
  with tfds.testing.mock_data(num_examples=4):
    images, _ = sources.load_tfds("stl10", "unlabelled", data_dir=str(tmp_path), download=False, max_size=40)
  assert images.shape == (4, 40, 40, 3) and images.dtype == np.uint8


def test_unprepared_tfds_dataset_fails_fast_offline(tmp_path):
  cfg = _cfg(tfds_data_dir=str(tmp_path), datasets=("cifar10",))
  start = time.monotonic()
  with pytest.raises(data.DataError, match=r"'cifar10' is not prepared.*cifar10_local.*download=True"):
    data.make_pretrain_iterator(cfg, seed=0)
  assert time.monotonic() - start < 10


def test_download_without_network_fails_fast(tmp_path, monkeypatch):
  monkeypatch.setattr(sources, "network_available", lambda *a, **k: False)
  cfg = _cfg(tfds_data_dir=str(tmp_path), download=True)
  start = time.monotonic()
  with pytest.raises(data.DataError, match=r"no network.*'stl10'"):
    data.load_labelled("stl10", "train", cfg)
  assert time.monotonic() - start < 10


def test_network_probe_gives_up_within_its_timeout():
  start = time.monotonic()
  assert sources.network_available(("192.0.2.1", 9), timeout=0.5) is False  # TEST-NET-1: never routable
  assert time.monotonic() - start < 2


def test_unlabelled_split_is_not_a_labelled_split():
  with pytest.raises(data.DataError, match="labelled splits train, test"):
    data.load_labelled("stl10", "unlabelled", _cfg())
