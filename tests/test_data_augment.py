"""Augmentations: deterministic per key, each option has the effect it claims."""

import numpy as np
import pytest
import tensorflow as tf

from hjepa_jax.data import DataError, augment, default_data_config
from hjepa_jax.data.validate import check_data_config

RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 256, (24, 40, 48, 3), dtype=np.uint8)


def _data_cfg(**overrides):
  cfg = default_data_config()
  for k, v in overrides.items():
    cfg[k] = v
  return cfg


def _aug(**overrides):
  """The global-view AugmentConfig of the default config.data with `overrides`."""
  return augment.ViewConfig.from_data_config(_data_cfg(**overrides), num_global=1).global_cfg


def _run(cfg, images=IMAGES, seed=0, epoch=0):
  """Augments a batch the way the pipeline does for image files (one traced function, mapped)."""
  n = len(images)
  u = augment.uniforms(seed, tf.fill([n], epoch), tf.range(n))
  ds = tf.data.Dataset.from_tensor_slices((images, u)).map(lambda x, v: augment.augment(x, v, cfg))
  return next(iter(ds.batch(n))).numpy()


def test_uniforms_are_a_function_of_position_only():
  offsets = tf.constant([0, 255, 256, 257, 1000, 5], tf.int64)
  together = augment.uniforms(3, tf.constant([0, 0, 0, 0, 0, 1], tf.int64), offsets).numpy()
  assert together.shape == (6, augment.NUM_UNIFORMS) and together.dtype == np.float32
  assert np.all((together >= 0) & (together < 1))
  for i in range(6):  # the same draws whichever other positions share the call
    alone = augment.uniforms(3, tf.constant([0, 0, 0, 0, 0, 1][i : i + 1], tf.int64), offsets[i : i + 1])
    np.testing.assert_array_equal(alone.numpy()[0], together[i])
  assert len({row.tobytes() for row in together}) == 6  # across block and epoch boundaries too
  assert not np.array_equal(augment.uniforms(4, [0], [0]).numpy(), together[:1])
  assert augment.uniforms(3, tf.zeros([0], tf.int64), tf.zeros([0], tf.int64)).shape == (0, augment.NUM_UNIFORMS)


def test_batched_boxes_match_per_image_path():
  cfg = _aug(image_size=20, horizontal_flip=True, deit3_strength=0.7)
  n = len(IMAGES)
  u = augment.uniforms(0, tf.zeros([n], tf.int64), tf.range(n, dtype=tf.int64))
  boxes = augment.crop_boxes(u, IMAGES.shape[1], IMAGES.shape[2], cfg)
  assert boxes.shape == (n, 4) and boxes.dtype == tf.int32
  top, left, h, w = boxes.numpy().T
  assert np.all((top >= 0) & (left >= 0) & (top + h <= 40) & (left + w <= 48) & (h > 0) & (w > 0))
  area = h * w / (40 * 48)
  assert np.all((area > 0.27) & (area < 1.03)) and area.std() > 0.1
  batched = np.stack([augment.apply(tf.constant(x), u[i], boxes[i], cfg).numpy() for i, x in enumerate(IMAGES)])
  np.testing.assert_array_equal(batched, _run(cfg))


def test_output_shape_dtype_and_determinism():
  cfg = _aug(image_size=20)
  a = _run(cfg)
  assert a.shape == (24, 20, 20, 3) and a.dtype == np.uint8
  np.testing.assert_array_equal(a, _run(cfg))
  assert not np.array_equal(a, _run(cfg, seed=1))
  assert not np.array_equal(a, _run(cfg, epoch=1))
  assert not np.array_equal(a[0], a[1])


def test_flip_mirrors_some_images_and_keeps_the_crops():
  plain = _run(_aug(image_size=20))
  flipped = _run(_aug(image_size=20, horizontal_flip=True))
  same = [np.array_equal(p, f) for p, f in zip(plain, flipped)]
  mirrored = [np.array_equal(p[:, ::-1], f) for p, f in zip(plain, flipped)]
  assert all(s or m for s, m in zip(same, mirrored))
  assert 4 <= sum(mirrored) <= 20


def test_deit3_strength_changes_output_and_zero_is_off():
  base = _run(_aug(image_size=20))
  strong = _run(_aug(image_size=20, deit3_strength=1.0))
  assert strong.shape == base.shape and strong.dtype == np.uint8
  changed = [not np.array_equal(b, s) for b, s in zip(base, strong)]
  assert all(changed)
  np.testing.assert_array_equal(strong, _run(_aug(image_size=20, deit3_strength=1.0)))
  weak = _run(_aug(image_size=20, deit3_strength=0.1))
  assert np.abs(weak.astype(int) - base).mean() < np.abs(strong.astype(int) - base).mean()


def test_deit3_grayscale_branch_produces_grey_images():
  strong = _run(_aug(image_size=20, deit3_strength=1.0))
  grey = [np.array_equal(x[..., 0], x[..., 1]) and np.array_equal(x[..., 1], x[..., 2]) for x in strong]
  assert 1 <= sum(grey) <= 16  # about a third of the images pick grayscale


def test_full_scale_crop_of_square_image_is_a_resize():
  square = IMAGES[:, :40, :40]
  cfg = _aug(image_size=40, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0))
  np.testing.assert_array_equal(_run(cfg, images=square), square)


def test_crop_scale_controls_zoom():
  """Smaller crops of a smooth gradient span a smaller range of values."""
  ramp = np.broadcast_to(np.linspace(0, 255, 64).astype(np.uint8)[None, :, None], (64, 64, 3))
  images = np.stack([ramp] * 16)
  small = _run(_aug(image_size=32, crop_scale=(0.1, 0.1), crop_ratio=(1, 1)), images)
  large = _run(_aug(image_size=32, crop_scale=(0.9, 0.9), crop_ratio=(1, 1)), images)
  span = lambda x: (x[:, :, -1, 0].astype(int) - x[:, :, 0, 0]).mean()  # noqa: E731
  assert span(small) < 0.45 * span(large)


def test_extreme_aspect_falls_back_to_centre_crop():
  wide = np.zeros((4, 8, 200, 3), np.uint8)
  wide[:, :, 96:104] = 255
  out = _run(_aug(image_size=8, crop_scale=(0.9, 1.0), crop_ratio=(1.0, 1.0)), wide)
  assert out.shape == (4, 8, 8, 3)
  assert np.all(out[:, :, 3:5] > 200)  # the centred 8x8 window holds the bright stripe


@pytest.mark.parametrize(
  "kwargs",
  [dict(crop_scale=(0.0, 1.0)), dict(crop_scale=(0.9, 0.5)), dict(crop_ratio=(2.0, 1.0)), dict(deit3_strength=-1.0)],
)
def test_config_is_validated(kwargs):
  with pytest.raises(DataError):
    check_data_config(_data_cfg(image_size=32, **kwargs))


def test_center_resize_keeps_aspect_and_centres():
  image = np.zeros((40, 80, 3), np.uint8)
  image[:, 20:60] = 200  # the centre square
  out = augment.center_resize(tf.constant(image), 20).numpy()
  assert out.shape == (20, 20, 3) and np.all(out[:, 1:-1] == 200)
  assert out[:, [0, -1]].min() > 150  # only antialiasing bleeds in at the borders
  cropped = augment.center_resize(tf.constant(image[:, 20:60]), 20, crop_fraction=0.5).numpy()
  assert np.all(cropped == 200)
  same = augment.center_resize(tf.constant(IMAGES[0, :32, :32]), 32).numpy()
  np.testing.assert_array_equal(same, IMAGES[0, :32, :32])


def test_shrink_to_max_size():
  small = tf.constant(IMAGES[0])
  assert augment.shrink_to_max_size(small, 64) is small
  out = augment.shrink_to_max_size(small, 24).numpy()
  assert out.shape == (20, 24, 3) and out.dtype == np.uint8


@pytest.mark.parametrize("size, crop_fraction", [(24, 1.0), (24, 0.875), (40, 1.0), (64, 1.0)])
def test_evaluation_resize_of_arrays_matches_per_image_transform(size, crop_fraction):
  """labelled's JAX resize of in-memory arrays (TF-free) is TensorFlow's center_resize up to float rounding."""
  from hjepa_jax.data import labelled

  batched = labelled._resize_arrays(IMAGES[:4], size, crop_fraction)
  single = np.stack([augment.center_resize(tf.constant(x), size, crop_fraction).numpy() for x in IMAGES[:4]])
  diff = np.abs(batched.astype(np.int32) - single)
  assert batched.shape == single.shape and diff.max() <= 1 and (diff == 0).mean() > 0.99, (diff.max(), diff.mean())


def test_gaussian_blur_preserves_constants_and_smooths():
  flat = tf.fill([16, 16, 3], 77.0)
  np.testing.assert_allclose(augment._gaussian_blur(flat, 1.0, 3, 16).numpy(), 77.0, rtol=1e-6)
  noise = tf.constant(IMAGES[0, :16, :16].astype(np.float32))
  blurred = augment._gaussian_blur(noise, 1.0, 3, 16).numpy()
  assert blurred.shape == (16, 16, 3)
  assert blurred.std() < 0.5 * noise.numpy().std()
  assert abs(blurred.mean() - noise.numpy().mean()) < 3
  impulse = np.zeros((16, 16, 3), np.float32)
  impulse[8, 8] = 1.0
  kernel = augment._gaussian_blur(tf.constant(impulse), 1.0, 3, 16).numpy()[..., 0]
  np.testing.assert_allclose(kernel, kernel.T, atol=1e-7)  # isotropic
  assert kernel.sum() == pytest.approx(1.0, abs=1e-5) and kernel.argmax() == 8 * 16 + 8
