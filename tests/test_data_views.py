"""Pretraining views: a second global view and multi-crop local views of the same image."""

import itertools

import numpy as np
import pytest

import hjepa_jax.data as data
from hjepa_jax.data.pipeline import MixtureOrder
from hjepa_jax.data.local import load_source
from hjepa_jax.data.validate import check_data_config
from tests._data import fresh_cache  # noqa: F401  (autouse: an empty dataset cache per test)
from tests._data import write_fake_imagenet

DIGITS_TRAIN = 1433


@pytest.fixture(scope="module")
def imagenet_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("imagenet")
  write_fake_imagenet(root, class_indices=(0, 1), per_class=4, size=(32, 40))
  return str(root)


def _cfg(num_local=0, local_size=8, local_scale=None, **overrides):
  cfg = data.default_data_config()
  cfg.datasets = ("digits",)
  cfg.batch_size = 16
  cfg.image_size = 16
  cfg.multicrop.num_local = num_local
  cfg.multicrop.local_size = local_size
  if local_scale is not None:
    cfg.multicrop.local_scale = local_scale
  for k, v in overrides.items():
    cfg[k] = v
  return cfg


def _take(it, n):
  return list(itertools.islice(it, n))


def _assert_batches_equal(a, b):
  assert set(a) == set(b)
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.parametrize("source", ["digits", "imagenet100"])
def test_keys_shapes_and_dtypes(source, imagenet_dir):
  cfg = _cfg(num_local=3, horizontal_flip=True, deit3_strength=0.5)
  if source == "imagenet100":  # image files: decoded once, cropped five times
    cfg.datasets, cfg.imagenet100_dir, cfg.batch_size = ("imagenet100",), imagenet_dir, 4
  b = cfg.batch_size
  batch = next(data.make_pretrain_iterator(cfg, seed=0, num_views=2))
  assert set(batch) == {"image", "image_view2", "local"}
  assert batch["image"].shape == batch["image_view2"].shape == (b, 16, 16, 3)
  assert batch["local"].shape == (b, 3, 8, 8, 3)
  assert all(v.dtype == np.uint8 for v in batch.values())
  if source == "digits":
    cfg.deit3_strength = 0.0  # cheaper to build; only the keys matter here
    assert set(next(data.make_pretrain_iterator(cfg, seed=0))) == {"image", "local"}
    cfg.multicrop.num_local = 0
    assert set(next(data.make_pretrain_iterator(cfg, seed=0, num_views=2))) == {"image", "image_view2"}


def test_full_image_crops_make_every_view_the_source_image():
  """Without random crops, flips or 3-Augment each view is the whole source example: all views
  are cut from the same image."""
  cfg = _cfg(
    num_local=2,
    local_size=32,
    local_scale=(1.0, 1.0),
    image_size=32,
    crop_scale=(1.0, 1.0),
    crop_ratio=(1.0, 1.0),
    horizontal_flip=False,
    deit3_strength=0.0,
  )
  batch = next(data.make_pretrain_iterator(cfg, seed=4, num_views=2))
  source = load_source("digits", "train", cfg).images
  expected = source[MixtureOrder([DIGITS_TRAIN], [1.0], seed=4).slice(0, 16)["example"]]
  np.testing.assert_array_equal(batch["image"], expected)
  np.testing.assert_array_equal(batch["image_view2"], expected)
  for j in range(2):
    np.testing.assert_array_equal(batch["local"][:, j], expected)


def test_file_source_views_are_crops_of_one_decoded_image(imagenet_dir):
  cfg = _cfg(
    datasets=("imagenet100",),
    imagenet100_dir=imagenet_dir,
    batch_size=8,
    image_size=32,
    crop_scale=(1.0, 1.0),
    crop_ratio=(1.0, 1.0),
    num_local=1,
    local_size=32,
    local_scale=(1.0, 1.0),
  )
  batch = next(data.make_pretrain_iterator(cfg, seed=0, num_views=2))
  # 32x40 files: the largest centred 1:1 box is the same for every view.
  np.testing.assert_array_equal(batch["image"], batch["image_view2"])
  np.testing.assert_array_equal(batch["image"], batch["local"][:, 0])
  assert len({x.tobytes() for x in batch["image"]}) == 8  # eight different files


def test_default_crops_give_different_views_and_locals():
  cfg = _cfg(num_local=4)
  batch = next(data.make_pretrain_iterator(cfg, seed=1, num_views=2))
  same = [np.array_equal(a, b) for a, b in zip(batch["image"], batch["image_view2"])]
  assert not any(same)
  local = batch["local"]
  for i, j in itertools.combinations(range(4), 2):
    assert not np.array_equal(local[:, i], local[:, j])
  assert np.mean([np.array_equal(x[0], x[1]) for x in local]) < 0.2


def test_local_boxes_use_local_scale_and_global_boxes_crop_scale():
  import tensorflow as tf

  from hjepa_jax.data import augment

  cfg = _cfg(num_local=3, local_scale=(0.1, 0.2), crop_scale=(0.6, 0.9), crop_ratio=(1.0, 1.0))
  views = augment.ViewConfig.from_data_config(cfg, num_global=2)
  assert views.view_ids == (0, 1, augment.LOCAL_VIEW_BASE, augment.LOCAL_VIEW_BASE + 1, augment.LOCAL_VIEW_BASE + 2)
  u = augment.view_uniforms(0, tf.zeros([50], tf.int64), tf.range(50, dtype=tf.int64), views.view_ids)
  assert u.shape == (50, 5, augment.NUM_UNIFORMS)
  np.testing.assert_array_equal(u[:, 0], augment.uniforms(0, tf.zeros([50], tf.int64), tf.range(50)))
  top, left, h, w = np.moveaxis(augment.view_boxes(u, 200, 200, views).numpy(), -1, 0)
  area = h * w / 200**2
  assert np.all((top >= 0) & (left >= 0) & (top + h <= 200) & (left + w <= 200))
  assert np.all((area[:, :2] > 0.59) & (area[:, :2] < 0.91))
  assert np.all((area[:, 2:] > 0.09) & (area[:, 2:] < 0.21))


def test_single_view_without_locals_is_the_default_call():
  cfg = _cfg(horizontal_flip=True, deit3_strength=0.7)
  default = _take(data.make_pretrain_iterator(cfg, seed=3), 2)
  explicit = _take(data.make_pretrain_iterator(cfg, seed=3, num_views=1), 2)
  for a, b in zip(default, explicit, strict=True):
    assert set(a) == {"image"}
    _assert_batches_equal(a, b)
  # Turning more views on leaves the first view's draws untouched.
  cfg.multicrop.num_local = 2
  more = _take(data.make_pretrain_iterator(cfg, seed=3, num_views=2), 2)
  for a, b in zip(default, more, strict=True):
    np.testing.assert_array_equal(a["image"], b["image"])


def test_resume_reproduces_every_view(imagenet_dir):
  cfg = _cfg(
    num_local=2,
    horizontal_flip=True,
    deit3_strength=0.3,
    batch_size=8,
    datasets=("digits:0.7", "imagenet100:0.3"),
    imagenet100_dir=imagenet_dir,
  )
  fresh = _take(data.make_pretrain_iterator(cfg, seed=9, num_views=2), 4)
  resumed = next(data.make_pretrain_iterator(cfg, seed=9, start_step=3, num_views=2))
  _assert_batches_equal(fresh[3], resumed)
  assert not np.array_equal(fresh[2]["local"], fresh[3]["local"])


def test_hosts_split_every_view():
  cfg = _cfg(num_local=2)
  whole = next(data.make_pretrain_iterator(cfg, seed=2, start_step=1, num_views=2))
  parts = [
    next(data.make_pretrain_iterator(cfg, seed=2, start_step=1, num_views=2, process_index=i, process_count=2))
    for i in range(2)
  ]
  for k in whole:
    np.testing.assert_array_equal(np.concatenate([p[k] for p in parts]), whole[k])


def test_default_multicrop_config_is_valid_and_every_key_is_read():
  from hjepa_jax.config import ConfigReader

  cfg = data.default_data_config()
  assert cfg.multicrop.num_local == 0 and cfg.multicrop.local_size == 96
  assert tuple(cfg.multicrop.local_scale) == (0.05, 0.3)
  reader = ConfigReader(cfg)
  check_data_config(reader)  # local_size 96 > image_size 32 is fine while num_local is 0
  assert not [k for k in reader.unread() if "multicrop" in k]


@pytest.mark.parametrize(
  "multicrop, key",
  [
    (dict(num_local=-1), "num_local"),
    (dict(num_local=1.5), "num_local"),
    (dict(num_local=True), "num_local"),
    (dict(num_local=2, local_size=64), "local_size"),  # > image_size 32
    (dict(local_size=0), "local_size"),
    (dict(local_size=8.0), "local_size"),
    (dict(local_scale=(0.3, 0.05)), "local_scale"),
    (dict(local_scale=(0.0, 0.3)), "local_scale"),
    (dict(local_scale=(0.1, 1.5)), "local_scale"),
    (dict(local_scale=(0.1,)), "local_scale"),
    (dict(local_scale=0.2), "local_scale"),
  ],
)
def test_bad_multicrop_values_fail_naming_the_key(multicrop, key):
  cfg = data.default_data_config()
  cfg.multicrop = data.default_data_config().multicrop.to_dict() | multicrop
  with pytest.raises(data.DataError, match=rf"data\.multicrop\.{key}"):
    check_data_config(cfg)
  cfg.datasets = ("digits",)
  with pytest.raises(data.DataError, match=rf"data\.multicrop\.{key}"):
    data.make_pretrain_iterator(cfg, seed=0)


def test_num_views_is_checked():
  for bad in (0, 3):
    with pytest.raises(data.DataError, match="num_views"):
      data.make_pretrain_iterator(_cfg(), seed=0, num_views=bad)
