"""The device input path (data.pipeline=device): the tf.data path's augmentation distribution, computed inside
jit, deterministic per (seed, step), each key with its effect, one compile."""

import numpy as np
import pytest

import hjepa_jax.data as data
from hjepa_jax.data import device
from hjepa_jax.data.order import MixtureOrder
from hjepa_jax.data.validate import check_data_config
from hjepa_jax.data.views import U_FLIP, ViewConfig
from tests._data import fresh_cache  # noqa: F401  (autouse: an empty dataset cache per test)
from tests._data import write_fake_cifar10

SIZE = 32  # CIFAR-10's side, also the output side: crops are enlarged, so plain bilinear
EDGE = 3  # output rows/columns left out of the fits (interpolation clamps at a crop's border)


def _coordinate_images(n):
  """Red encodes the row, green the column (8 grey levels per pixel): a crop's box can be read back."""
  ramp = 8 * np.arange(SIZE) + 4
  rows, cols = np.meshgrid(ramp, ramp, indexing="ij")
  image = np.stack([rows, cols, np.full_like(rows, 128)], axis=-1).astype(np.uint8)
  return np.repeat(image[None], n, axis=0)


def _cfg(root=None, **overrides):
  cfg = data.default_data_config()
  cfg.datasets = ("cifar10_local",) if root else ("digits",)
  cfg.cifar10_dir = str(root) if root else None
  cfg.image_size, cfg.batch_size = (SIZE, 256) if root else (16, 8)
  for k, v in overrides.items():
    cfg[k] = v
  return cfg


def _fit(profile):
  """Per row of profile [n, SIZE] (a ramp's values at the output samples): (start, length) of the crop that
  produced it, from the least-squares line through the interior samples (sample i reads input coordinate
  start + (i + 0.5) * length / SIZE - 0.5, whose value is 8 * coordinate + 4)."""
  i = np.arange(EDGE, SIZE - EDGE, dtype=np.float64)
  y = profile[:, EDGE : SIZE - EDGE].astype(np.float64)
  slope = ((i - i.mean()) * (y - y.mean(1, keepdims=True))).sum(1) / ((i - i.mean()) ** 2).sum()
  intercept = y.mean(1) - slope * i.mean()
  length = slope * SIZE / 8
  start = (intercept - 4) / 8 - 0.5 * length / SIZE + 0.5
  return start, length


def _boxes(images):
  """(top, left, height, width, flipped) read back from augmented coordinate images [n, S, S, 3]."""
  images = np.asarray(images, np.float64)
  top, height = _fit(images[..., 0].mean(axis=2))
  cols = images[..., 1].mean(axis=1)
  flipped = cols[:, -1] < cols[:, 0]
  left, width = _fit(np.where(flipped[:, None], cols[:, ::-1], cols))
  return top, left, height, width, flipped


def test_crop_and_flip_statistics_match_the_tfdata_path(tmp_path):
  """Same crop-scale and aspect quantiles and flip rate as tf.data over 512 crops; and the device path's
  images are exactly the boxes and flips its uniforms say."""
  write_fake_cifar10(tmp_path, per_batch=52, images=_coordinate_images(52))  # 260 train images
  cfg = _cfg(tmp_path, horizontal_flip=True)
  tf_it = data.make_pretrain_iterator(cfg, seed=0)
  tf_boxes = _boxes(np.concatenate([next(tf_it)["image"] for _ in range(2)]))
  tf_it.close()
  it = data.make_device_iterator(cfg, seed=0)
  dev_boxes = _boxes(np.concatenate([np.asarray(next(it)["image"]) for _ in range(2)]))

  stats = []
  for top, left, h, w, flipped in (tf_boxes, dev_boxes):
    assert np.all(np.abs(h - np.round(h)) < 0.1) and np.all(np.abs(w - np.round(w)) < 0.1)  # recovered exactly
    assert np.all((top > -0.1) & (left > -0.1) & (top + h < SIZE + 0.1) & (left + w < SIZE + 0.1))
    stats.append((np.quantile(h * w / SIZE**2, [0.1, 0.25, 0.5, 0.75, 0.9]), np.log(w / h), flipped.mean()))
  (scale_tf, aspect_tf, flip_tf), (scale_dev, aspect_dev, flip_dev) = stats
  assert 0.3 - 0.03 < scale_dev[0] and scale_dev[-1] <= 1.0 + 1e-6
  np.testing.assert_allclose(scale_dev, scale_tf, atol=0.06)
  quantiles = [0.1, 0.25, 0.5, 0.75, 0.9]
  np.testing.assert_allclose(np.quantile(aspect_dev, quantiles), np.quantile(aspect_tf, quantiles), atol=0.06)
  assert np.abs(aspect_dev).max() <= np.log(4 / 3) + 0.05
  assert abs(flip_dev - 0.5) < 0.08 and abs(flip_dev - flip_tf) < 0.1

  # The device path's first batch is exactly what its uniforms prescribe.
  sl = MixtureOrder([260], [1.0], 0).slice(0, 256)
  u = device.uniforms(0, sl["epoch"], sl["offset"], (0,))[:, 0]
  box = np.asarray(device.crop_boxes(u, SIZE, SIZE, ViewConfig.from_data_config(cfg, 1).global_cfg))
  top, left, h, w, flipped = (x[:256] for x in dev_boxes)
  np.testing.assert_array_equal(np.round(np.stack([top, left, h, w], 1)).astype(int), box)
  np.testing.assert_array_equal(flipped, np.asarray(u[:, U_FLIP]) < 0.5)


def test_three_augment_statistics_match_the_tfdata_path(tmp_path):
  """DeiT-III 3-Augment at strength 1 on random images, 512 per path: a third come out grey (the grayscale
  choice; jitter keeps them grey) and the images' brightness and contrast quantiles agree."""
  write_fake_cifar10(tmp_path, per_batch=52)
  cfg = _cfg(tmp_path, deit3_strength=1.0)
  tf_it = data.make_pretrain_iterator(cfg, seed=0)
  dev_it = data.make_device_iterator(cfg, seed=0)
  per_path = [np.concatenate([next(tf_it)["image"] for _ in range(2)]).astype(np.float32)]
  per_path.append(np.concatenate([np.asarray(next(dev_it)["image"]) for _ in range(2)]).astype(np.float32))
  tf_it.close()
  quantiles = [0.1, 0.5, 0.9]
  summary = []
  for x in per_path:
    grey = (np.abs(x[..., 0] - x[..., 1]).max(axis=(1, 2)) < 3).mean()
    assert abs(grey - 1 / 3) < 0.08, grey
    summary.append(
      np.concatenate([np.quantile(x.mean((1, 2, 3)), quantiles), np.quantile(x.std((1, 2, 3)), quantiles)])
    )
  np.testing.assert_allclose(summary[1], summary[0], atol=8.0)


def test_batches_are_a_function_of_seed_and_step_and_compile_once():
  """A resumed iterator yields the fresh one's batches bit for bit (across an epoch boundary); seeds and steps
  differ; one program for every batch; the tf.data iterator's keys and shapes."""
  cfg = _cfg(horizontal_flip=True, deit3_strength=0.5)
  cfg.multicrop.num_local, cfg.multicrop.local_size = 2, 8
  boundary = 1433 // 8  # digits train: step 179 straddles epochs 0 and 1
  fresh = data.make_device_iterator(cfg, seed=7, num_views=2)
  resumed = data.make_device_iterator(cfg, seed=7, num_views=2, start_step=boundary - 1)
  for step in range(boundary - 1, boundary + 2):
    a, b = fresh.batch(step), next(resumed)
    assert set(a) == {"image", "image_view2", "local"}
    for k in a:
      np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]))
  assert a["image"].shape == (8, 16, 16, 3) and a["local"].shape == (8, 2, 8, 8, 3) and a["image"].dtype == np.uint8
  assert not np.array_equal(np.asarray(fresh.batch(0)["image"]), np.asarray(fresh.batch(1)["image"]))
  assert not np.array_equal(np.asarray(a["image"]), np.asarray(a["image_view2"]))
  other = data.make_device_iterator(cfg, seed=8, num_views=2).batch(boundary + 1)
  assert not np.array_equal(np.asarray(other["image"]), np.asarray(a["image"]))
  assert fresh.compiles == resumed.compiles == 1


@pytest.mark.parametrize(
  "key, value",
  [("crop_scale", (0.05, 0.2)), ("crop_ratio", (0.3, 0.4)), ("horizontal_flip", True), ("deit3_strength", 1.0)],
)
def test_each_key_changes_the_batch(key, value):
  """Each augmentation key changes the device path's images (on the same examples and draws)."""
  base = np.asarray(data.make_device_iterator(_cfg(), seed=0).batch(0)["image"])
  changed = np.asarray(data.make_device_iterator(_cfg(**{key: value}), seed=0).batch(0)["image"])
  assert changed.shape == base.shape and not np.array_equal(changed, base)


def test_three_augment_blur_matches_tensorflow():
  """The one 3-Augment op that is not a per-pixel formula, against augment.py's (a constant stays, an impulse
  spreads into the same normalised symmetric kernel)."""
  tf = pytest.importorskip("tensorflow")
  from hjepa_jax.data import augment  # pylint: disable=g-import-not-at-top  (TensorFlow)

  impulse = np.zeros((16, 16, 3), np.float32)
  impulse[8, 8] = 1.0
  k = np.asarray(device.blur_matrix(1.0, 3, 16))
  ours = np.einsum("sh,hwc,tw->stc", k, impulse, k)
  np.testing.assert_allclose(ours, augment._gaussian_blur(tf.constant(impulse), 1.0, 3, 16).numpy(), atol=1e-6)


def test_pipeline_key_is_checked():
  """data.pipeline: one of tfdata / device, naming the key; device takes every dataset (image folders are
  decoded into memory: tests/test_data_folder.py)."""
  with pytest.raises(data.DataError, match="data.pipeline"):
    check_data_config(_cfg(pipeline="jax"))
  check_data_config(_cfg(pipeline="device", datasets=("digits", "stl10", "cifar10", "cifar10_local", "image_folder")))


@pytest.mark.parametrize("height, width", [(32, 32), (96, 24), (20, 120)])
def test_crop_boxes_equal_the_tfdata_rule(height, width):
  """The crop-box rule exists twice (TensorFlow in augment.py, JAX here): the same uniforms give the same
  boxes, fall-back boxes included (narrow images and a tight scale make some examples exhaust their tries)."""
  from hjepa_jax.data import augment  # the tf.data path's rule; TensorFlow is fine in this test

  from hjepa_jax.data.views import NUM_UNIFORMS, AugmentConfig

  cfg = AugmentConfig(
    image_size=32, crop_scale=(0.3, 1.0), crop_ratio=(0.75, 1.33), horizontal_flip=True, deit3_strength=0
  )
  u = np.random.RandomState(height).uniform(size=(512, NUM_UNIFORMS)).astype(np.float32)
  want = augment.crop_boxes(u, height, width, cfg).numpy()
  got = np.asarray(device.crop_boxes(u, height, width, cfg))
  np.testing.assert_array_equal(got, want)
  assert not (want[:, 2:] == [height, width]).all()  # not every box is the whole image
