"""Pretraining pipeline: exact resumption, host sharding, mixture weights, ordering."""

import itertools

import numpy as np
import pytest

import hjepa_jax.data as data
from hjepa_jax.data.order import mixture_order
from hjepa_jax.data.pipeline import MixtureOrder
from hjepa_jax.data.validate import parse_datasets
from tests._data import fresh_cache  # noqa: F401  (autouse: an empty dataset cache per test)
from tests._data import write_fake_cifar10

DIGITS_TRAIN = 1433


def _cfg(**overrides):
  cfg = data.default_data_config()
  cfg.datasets = ("digits",)
  cfg.batch_size = 64
  cfg.image_size = 16
  for k, v in overrides.items():
    cfg[k] = v
  return cfg


def _take(it, n):
  return [b["image"] for b in itertools.islice(it, n)]


def test_batches_are_uint8_images_of_the_global_batch():
  batch = next(data.make_pretrain_iterator(_cfg(), seed=0))
  assert set(batch) == {"image"}
  assert batch["image"].shape == (64, 16, 16, 3) and batch["image"].dtype == np.uint8


def test_resumed_iterator_equals_tail_of_fresh_one_across_epoch_boundary():
  cfg = _cfg(horizontal_flip=True, deit3_strength=0.5)
  boundary_step = DIGITS_TRAIN // 64  # batch 22 straddles epochs 0 and 1
  fresh = _take(data.make_pretrain_iterator(cfg, seed=7), boundary_step + 3)
  start = boundary_step - 2
  resumed = _take(data.make_pretrain_iterator(cfg, seed=7, start_step=start), 5)
  for a, b in zip(fresh[start:], resumed, strict=True):
    np.testing.assert_array_equal(a, b)
  assert not np.array_equal(fresh[0], fresh[1])
  other_seed = next(data.make_pretrain_iterator(cfg, seed=8, start_step=start))
  assert not np.array_equal(other_seed, resumed[0])


def test_hosts_split_each_global_batch_contiguously():
  cfg = _cfg(horizontal_flip=True)
  whole = _take(data.make_pretrain_iterator(cfg, seed=3, start_step=5), 2)
  parts = [
    _take(data.make_pretrain_iterator(cfg, seed=3, start_step=5, process_index=i, process_count=2), 2) for i in range(2)
  ]
  for step in range(2):
    assert parts[0][step].shape == (32, 16, 16, 3)
    np.testing.assert_array_equal(np.concatenate([parts[0][step], parts[1][step]]), whole[step])


def test_batch_size_keyword_overrides_config_and_is_checked():
  it = data.make_pretrain_iterator(_cfg(), seed=0, batch_size=96, process_count=3, process_index=2)
  assert next(it)["image"].shape == (32, 16, 16, 3)
  with pytest.raises(data.DataError, match="not divisible by process_count=3"):
    data.make_pretrain_iterator(_cfg(), seed=0, process_count=3)
  with pytest.raises(data.DataError, match="process_index"):
    data.make_pretrain_iterator(_cfg(), seed=0, process_index=2, process_count=2)


def test_accumulation_batches_are_the_concatenation_of_micro_batches():
  """Positions, not batch indices, seed the augmentations, so doubling the batch
  for gradient accumulation sees the same examples the same way."""
  cfg = _cfg(deit3_strength=1.0)
  small = _take(data.make_pretrain_iterator(cfg, seed=1, start_step=4), 2)
  big = next(data.make_pretrain_iterator(cfg, seed=1, start_step=2, batch_size=128))["image"]
  np.testing.assert_array_equal(big, np.concatenate(small))


def test_mixture_weights_are_honoured(tmp_path):
  # Digits are grey (R == G == B); the fake CIFAR images are coloured noise.
  write_fake_cifar10(tmp_path, per_batch=100)  # 500 train images
  cfg = _cfg(
    cifar10_dir=str(tmp_path),
    datasets=("digits:0.8", "cifar10_local@train:0.2"),
    batch_size=100,
  )
  assert data.pretrain_num_examples(cfg) == DIGITS_TRAIN + 500
  images = np.concatenate(_take(data.make_pretrain_iterator(cfg, seed=0), 30))
  grey = np.all(images[..., 0] == images[..., 1], axis=(1, 2)) & np.all(images[..., 1] == images[..., 2], axis=(1, 2))
  assert abs(grey.mean() - 0.8) < 0.03


def test_mixture_resumes_exactly_and_splits_across_hosts(tmp_path):
  write_fake_cifar10(tmp_path, per_batch=10)  # 50 train images: epochs of 1483 draws
  cfg = _cfg(cifar10_dir=str(tmp_path), datasets=("digits:0.5", "cifar10_local:0.5"), batch_size=40)
  fresh = _take(data.make_pretrain_iterator(cfg, seed=2), 4)
  resumed = _take(data.make_pretrain_iterator(cfg, seed=2, start_step=2), 2)
  for a, b in zip(fresh[2:], resumed, strict=True):
    np.testing.assert_array_equal(a, b)
  halves = [
    next(data.make_pretrain_iterator(cfg, seed=2, start_step=3, process_index=i, process_count=2))["image"]
    for i in range(2)
  ]
  np.testing.assert_array_equal(np.concatenate(halves), fresh[3])


def test_mixture_order_proportions_and_without_replacement():
  order = MixtureOrder([1000, 300], [0.8, 0.2], seed=5)
  sl = order.slice(0, 3 * order.epoch_length)
  frac = np.mean(sl["source"] == 0)
  assert abs(frac - 0.8) < 1e-3
  # Within any draw window a source repeats nothing until all its examples were used.
  digits_ids = sl["example"][sl["source"] == 0][:1000]
  assert len(np.unique(digits_ids)) == 1000
  small_ids = sl["example"][sl["source"] == 1][:300]
  assert len(np.unique(small_ids)) == 300
  # Windows of a few hundred positions already follow the weights closely.
  windows = (sl["source"][: 13 * 100].reshape(13, 100) == 0).mean(axis=1)
  assert np.all(np.abs(windows - 0.8) < 0.15)


def test_single_source_epochs_are_permutations_and_differ():
  order = MixtureOrder([50], [1.0], seed=0)
  e0, e1 = order.epoch(0)[1], order.epoch(1)[1]
  assert sorted(e0) == list(range(50)) == sorted(e1)
  assert not np.array_equal(e0, e1)
  sl = order.slice(45, 10)
  assert sl["epoch"].tolist() == [0] * 5 + [1] * 5 and sl["offset"].tolist() == [45, 46, 47, 48, 49, 0, 1, 2, 3, 4]
  np.testing.assert_array_equal(sl["example"], np.concatenate([e0[45:], e1[:5]]))


def test_epoch_examples_fixes_the_epoch_whatever_the_mixture():
  """data.epoch_examples: the steps per epoch (so every epoch-based duration) stay those of the base dataset
  when a second one joins, and the draws are still shared by weight, without repeats within a pass."""
  mixed = _cfg(datasets=("digits:0.5", "digits@test:0.5"))
  assert data.pretrain_num_examples(mixed) == DIGITS_TRAIN + 364
  mixed.epoch_examples = DIGITS_TRAIN
  assert data.pretrain_num_examples(mixed) == DIGITS_TRAIN
  order = mixture_order(mixed, [range(DIGITS_TRAIN), range(364)], parse_datasets(mixed.datasets), seed=0)
  assert order.epoch_length == DIGITS_TRAIN and order.counts.tolist() == [717, 716]
  sl = order.slice(0, DIGITS_TRAIN)
  assert len(np.unique(sl["example"][sl["source"] == 0])) == 717  # no repeats within a pass of either source
  assert len(np.unique(sl["example"][sl["source"] == 1][:364])) == 364
  first = next(data.make_pretrain_iterator(mixed, seed=0))["image"]
  assert first.shape == (64, 16, 16, 3)
  with pytest.raises(data.DataError, match="epoch_examples"):
    data.pretrain_num_examples(_cfg(epoch_examples=0))


def test_order_depends_only_on_seed_and_epoch():
  a = MixtureOrder([70, 30], [1, 1], seed=9)
  b = MixtureOrder([70, 30], [1, 1], seed=9)
  b.epoch(3)  # visiting epochs in another order changes nothing
  for e in (0, 3):
    for x, y in zip(a.epoch(e), b.epoch(e)):
      np.testing.assert_array_equal(x, y)
  c = MixtureOrder([70, 30], [1, 1], seed=10)
  assert not np.array_equal(a.epoch(0)[1], c.epoch(0)[1])


def test_weight_too_small_to_draw_anything_is_an_error():
  with pytest.raises(data.DataError, match=r"'digits'\] get no example per epoch"):
    data.make_pretrain_iterator(_cfg(datasets=("digits@test:1", "digits:1e-6")), seed=0)


def test_frozen_config_is_accepted():
  from ml_collections import FrozenConfigDict

  batch = next(data.make_pretrain_iterator(FrozenConfigDict(_cfg()), seed=0))
  assert batch["image"].shape == (64, 16, 16, 3)
