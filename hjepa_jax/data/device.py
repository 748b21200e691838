"""The device input path (`data.pipeline=device`): in-memory datasets held on the accelerator(s) as uint8,
batches selected and augmented inside one jitted function with static shapes. No TensorFlow.

Why: tf.data on a few host cores delivers a few hundred DeiT-III-augmented 224 px crops per second, far
below what one GPU step consumes, and the accelerator machines have no TensorFlow. Here the host only
computes a batch's (source, example, epoch, offset) indices with the same numpy `MixtureOrder` as the
tf.data path (so both paths visit the same examples in the same order: epoch-based, without
replacement per source, weights of data.datasets respected) and sends those few integers; gathering,
cropping, resizing, flipping, 3-Augment and the uint8 rounding run on the device, sharded on the
"data" mesh axis.

Randomness: view v of the example at (epoch e, offset p) draws its `views.NUM_UNIFORMS` uniforms from
fold_in(fold_in(fold_in(fold_in(PRNGKey(seed), TAG), e), p), v), so a batch is a pure function of
(seed, step) whatever the device count, and a resumed run is bit-exact. The uniforms have the tf.data
path's layout and meaning (views.py); the draws themselves differ (JAX's threefry, not TF's
stateless Philox), so the two paths agree in distribution, not pixel for pixel.

Resizing is separable: each output axis is a [out, in] matrix of bilinear (triangle-kernel) weights
restricted to the crop box and widened by in/out when shrinking, which is what crop-then-
`tf.image.resize(antialias=True)` computes (up to float rounding). The crop box is a weight
pattern, not a slice, so shapes stay static; a flip reverses the column weights, and 3-Augment's
Gaussian blur (linear, separable) is one more matrix product on those weights. The per-pixel
3-Augment ops then run on [3, S, S] planes.
"""

import functools
import logging
import math
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from hjepa_jax.data import views as V
from hjepa_jax.data.local import load_mixture
from hjepa_jax.data.order import MixtureOrder, mixture_order
from hjepa_jax.data.validate import DataError, check_data_config

_log = logging.getLogger(__name__)
TAG = 0x44455649  # separates the device path's draws from every other use of the run's seed
_HIGHEST = jax.lax.Precision.HIGHEST  # TF32 matmuls on GPUs would move pixels by whole grey levels
CPU_CHUNK = 8  # examples per step of the loop on one CPU device (10-25% faster than the whole batch at 224 px)


def _lerp(u, lo: float, hi: float):
  return lo + (hi - lo) * u


# --- Crop boxes, resizing and 3-Augment on one example (vmapped) -----------------------------


def crop_boxes(u, height, width, cfg: V.AugmentConfig):
  """int32 [n, 4] boxes (top, left, h, w) for uniforms u [n, NUM_UNIFORMS] and image sizes [n]:
  augment.crop_boxes's Inception-style rule (10 tries of area in crop_scale and log-uniform aspect
  in crop_ratio, then the largest centred box within the ratio), in JAX."""
  h = jnp.asarray(height, jnp.float32) * jnp.ones_like(u[:, 0])
  w = jnp.asarray(width, jnp.float32) * jnp.ones_like(u[:, 0])
  (s0, s1), (r0, r1) = cfg.crop_scale, cfg.crop_ratio
  target = (h * w)[:, None] * _lerp(u[:, V.U_AREA], s0, s1)
  aspect = jnp.exp(_lerp(u[:, V.U_RATIO], math.log(r0), math.log(r1)))
  tries_w, tries_h = jnp.round(jnp.sqrt(target * aspect)), jnp.round(jnp.sqrt(target / aspect))
  ok = (tries_w > 0) & (tries_w <= w[:, None]) & (tries_h > 0) & (tries_h <= h[:, None])
  first = jnp.argmax(ok, axis=1)[:, None]
  found = ok.any(axis=1)
  ch = jnp.where(found, jnp.take_along_axis(tries_h, first, 1)[:, 0], jnp.where(w / h < r0, jnp.round(w / r0), h))
  cw = jnp.where(found, jnp.take_along_axis(tries_w, first, 1)[:, 0], jnp.where(w / h > r1, jnp.round(h * r1), w))
  top = jnp.where(found, jnp.floor(u[:, V.U_TOP] * (h - ch + 1)), jnp.floor((h - ch) / 2))
  left = jnp.where(found, jnp.floor(u[:, V.U_LEFT] * (w - cw + 1)), jnp.floor((w - cw) / 2))
  return jnp.stack([jnp.minimum(top, h - ch), jnp.minimum(left, w - cw), ch, cw], axis=1).astype(jnp.int32)


def axis_weights(start, length, in_size: int, out_size: int):
  """float32 [out_size, in_size]: bilinear weights that resample pixels [start, start + length) of an
  axis to out_size samples (half-pixel centres; the triangle widened by length / out_size when
  shrinking, i.e. antialiased; rows normalised over the pixels inside the box)."""
  start, length = jnp.asarray(start, jnp.float32), jnp.asarray(length, jnp.float32)
  scale = out_size / length
  centre = start + (jnp.arange(out_size, dtype=jnp.float32) + 0.5) / scale - 0.5
  pixel = jnp.arange(in_size, dtype=jnp.float32)
  w = jnp.maximum(0.0, 1.0 - jnp.abs(centre[:, None] - pixel[None]) * jnp.minimum(scale, 1.0))
  w = jnp.where((pixel >= start) & (pixel < start + length), w, 0.0)
  return w / jnp.maximum(w.sum(axis=1, keepdims=True), 1e-12)


def blur_matrix(sigma, radius: int, size: int):
  """float32 [size, size]: one axis of augment._gaussian_blur (taps exp(-t^2 / 2 sigma^2) for |t| <= radius,
  normalised, "REFLECT" borders) as a matrix, so a blur can be folded into the resize weights. Entry (i, j)
  sums the taps that read pixel j for output i: directly (t = j - i) or through the reflection at either
  border (t = -j - i when j > 0; t = 2 (size - 1) - j - i when j < size - 1)."""
  i, j = jnp.arange(size)[:, None], jnp.arange(size)[None]

  def tap(t):
    return jnp.where(jnp.abs(t) <= radius, jnp.exp(-(t.astype(jnp.float32) ** 2) / (2.0 * sigma**2)), 0.0)

  low = jnp.where(j > 0, tap(-j - i), 0.0)
  high = jnp.where(j < size - 1, tap(2 * (size - 1) - j - i), 0.0)
  return (tap(j - i) + low + high) / tap(jnp.arange(-radius, radius + 1)).sum()


def resample(image, wy, wx):
  """float32 planes [C, out_y, out_x] = wy @ image[..., c] @ wx.T for uint8 image [H, W, C]. Planar, because
  XLA:CPU handles per-channel arithmetic on a minor dimension of 3 several times slower."""
  rows = jnp.einsum("sh,hwc->csw", wy, image.astype(jnp.float32), precision=_HIGHEST)
  return jnp.einsum("csw,tw->cst", rows, wx, precision=_HIGHEST)


def to_uint8(image):
  """Rounds (half to even, as tf.round) and clips a float image on the 0-255 scale to uint8."""
  return jnp.clip(jnp.round(image), 0, 255).astype(jnp.uint8)


def _gray(planes):
  r, g, b = V.GRAY_WEIGHTS
  return (r * planes[0] + g * planes[1] + b * planes[2])[None]  # [1, S, S], broadcasts against the planes


def _choice(u):
  """3-Augment's operation: 0 grayscale, 1 solarize, 2 blur."""
  return jnp.minimum(jnp.floor(u[V.U_CHOICE] * 3.0), 2.0)


def _blur_sigma(u, cfg: V.AugmentConfig):
  return jnp.maximum(_lerp(u[V.U_SIGMA], *V.BLUR_SIGMA) * cfg.deit3_strength * cfg.image_size / 224.0, 1e-3)


def resize_views(image, box, flip, u, cfg: V.AugmentConfig):
  """(base, blurred) float32 planes [3, S, S] of one example: its crop `box` (top, left, h, w) resized to
  S = cfg.image_size and mirrored where `flip`, and, with 3-Augment on, that image blurred (augment.py's
  Gaussian blur, which is linear and separable: a product with the resize weights). At strength >= 1 the
  blend weight is 1 and a blurred example needs no unblurred copy, so one resample serves both."""
  size = cfg.image_size
  wy = axis_weights(box[0], box[2], image.shape[0], size)
  wx = axis_weights(box[1], box[3], image.shape[1], size)
  wx = jnp.where(flip, wx[::-1], wx)
  if cfg.deit3_strength <= 0:
    return resample(image, wy, wx), None
  k = blur_matrix(_blur_sigma(u, cfg), V.blur_radius(cfg.deit3_strength, size), size)
  ky, kx = (jnp.matmul(k, w, precision=_HIGHEST) for w in (wy, wx))
  if cfg.deit3_strength >= 1:
    blur = _choice(u) == 2
    base = resample(image, jnp.where(blur, ky, wy), jnp.where(blur, kx, wx))
    return base, base
  return resample(image, wy, wx), resample(image, ky, kx)


def three_augment(base, blurred, u, cfg: V.AugmentConfig):
  """augment._three_augment on planes [3, S, S]: one of grayscale / solarize / blur (by u[U_CHOICE]) blended in
  with weight min(s, 1), then brightness, contrast and saturation jitter in [1 - 0.3 s, 1 + 0.3 s]."""
  s = cfg.deit3_strength
  choice = _choice(u)
  solarized = jnp.where(base >= 128.0, 255.0 - base, base)
  changed = jnp.where(choice == 0, _gray(base), jnp.where(choice == 1, solarized, blurred))
  image = changed if s >= 1 else base + s * (changed - base)
  f = jnp.maximum(0.0, _lerp(u[V.U_JITTER], 1.0 - V.JITTER * s, 1.0 + V.JITTER * s))
  image = jnp.clip(image * f[0], 0.0, 255.0)
  mean = _gray(image).mean()
  image = jnp.clip(mean + (image - mean) * f[1], 0.0, 255.0)
  gray = _gray(image)
  return jnp.clip(gray + (image - gray) * f[2], 0.0, 255.0)


# --- A batch: indices in, views out ----------------------------------------------------------


def uniforms(seed: int, epoch, offset, view_ids):
  """float32 [n, len(view_ids), NUM_UNIFORMS]: the draws of each view of the examples at (epoch, offset)."""
  base = jax.random.fold_in(jax.random.PRNGKey(seed), TAG)

  def one(e, p):
    key = jax.random.fold_in(jax.random.fold_in(base, e), p)
    return jnp.stack([jax.random.uniform(jax.random.fold_in(key, v), (V.NUM_UNIFORMS,)) for v in view_ids])

  return jax.vmap(one)(epoch, offset)


def augment_batch(images, source, example, epoch, offset, *, seed: int, views: V.ViewConfig, chunk: int = 0):
  """Every view of a batch: `images` is a tuple of uint8 [N_k, H_k, W_k, 3] (one per source) and
  source / example / epoch / offset are int32 [B]. Returns the tf.data iterator's dict: "image"
  uint8 [B, S, S, 3], "image_view2" with two global views, "local" [B, L, s, s, 3] with multi-crop.

  chunk > 0 processes that many examples at a time in a loop (same values): on a CPU, whole-batch
  intermediates (38 MB per 64 images at 224 px) fall out of cache (10-25% slower at 224 px)."""
  u = uniforms(seed, epoch, offset, views.view_ids)
  heights = jnp.asarray([x.shape[1] for x in images], jnp.float32)[source]
  widths = jnp.asarray([x.shape[2] for x in images], jnp.float32)[source]
  # One gather per source; an example of another source reads row 0 there and is masked out below.
  pixels = [x[jnp.where(source == k, example, 0)] for k, x in enumerate(images)]

  def view(v, cfg):
    uv = u[:, v]
    box = crop_boxes(uv, heights, widths, cfg)
    flip = (uv[:, V.U_FLIP] < 0.5) & cfg.horizontal_flip

    def one(args):  # one example: its pixels in every source (the one of its own source is kept), draws and box
      xs, src, bx, f, uu = args
      base = blurred = None
      for k, x in enumerate(xs):
        b, bl = resize_views(x, bx, f, uu, cfg)
        if base is None:
          base, blurred = b, bl
        else:
          base, blurred = jnp.where(src == k, b, base), None if bl is None else jnp.where(src == k, bl, blurred)
      if cfg.deit3_strength > 0:
        base = three_augment(base, blurred, uu, cfg)
      return jnp.moveaxis(to_uint8(base), 0, -1)  # [3, S, S] -> [S, S, 3]

    args = (tuple(pixels), source, box, flip, uv)
    return jax.lax.map(one, args, batch_size=chunk) if chunk else jax.vmap(one)(args)

  g = views.num_global
  batch = {"image": view(0, views.global_cfg)}
  if g > 1:
    batch["image_view2"] = view(1, views.global_cfg)
  if views.num_local:
    batch["local"] = jnp.stack([view(g + j, views.local_cfg) for j in range(views.num_local)], axis=1)
  return batch


class DeviceIterator(Iterator[dict[str, jax.Array]]):
  """Infinite iterator of augmented batches as global jax.Arrays sharded on the mesh's "data" axis
  (the keys of `pipeline.PretrainIterator`). `batch(step)` recomputes any step's batch."""

  def __init__(self, images, order: MixtureOrder, mesh: Mesh, global_batch: int, start_step: int, fn):
    self._images, self._order, self._fn = images, order, fn
    self._sharding = NamedSharding(mesh, P("data"))
    self.global_batch, self.step = global_batch, start_step

  def indices(self, step: int) -> list[jax.Array]:
    """int32 (source, example, epoch, offset) of step's batch, on the mesh: what `augment` turns into it."""
    sl = self._order.slice(step * self.global_batch, self.global_batch)
    idx = [sl[k].astype(np.int32) for k in ("source", "example", "epoch", "offset")]
    return [jax.make_array_from_callback(a.shape, self._sharding, lambda i, a=a: a[i]) for a in idx]

  @property
  def images(self) -> tuple[jax.Array, ...]:
    """The sources' uint8 images on the devices (replicated)."""
    return self._images

  @property
  def augment(self):
    """The jitted (images, source, example, epoch, offset) -> batch; callable inside another jit (inlined)."""
    return self._fn

  def batch(self, step: int) -> dict[str, jax.Array]:
    return self._fn(self._images, *self.indices(step))

  def __next__(self) -> dict[str, jax.Array]:
    out = self.batch(self.step)
    self.step += 1
    return out

  def close(self) -> None:
    """Frees the device copies of the images."""
    self._images = ()

  @property
  def compiles(self) -> int:
    """How many programs the augmentation has compiled (one per run)."""
    return self._fn._cache_size()  # pylint: disable=protected-access


@functools.lru_cache(maxsize=8)
def _augment_fn(seed: int, views: V.ViewConfig, mesh: Mesh, chunk: int):
  """The jitted `augment_batch`, shared by iterators with the same arguments (a resumed one, a benchmark's).
  On one CPU device examples go through in cache-sized chunks; accelerators (and meshes, whose batch axis
  is sharded) take the whole batch at once."""
  return jax.jit(
    lambda imgs, *idx: augment_batch(imgs, *idx, seed=seed, views=views, chunk=chunk),
    out_shardings=NamedSharding(mesh, P("data")),
  )


def make_device_iterator(
  data_cfg: Any,
  *,
  seed: int,
  mesh: Mesh | None = None,
  start_step: int = 0,
  batch_size: int | None = None,
  num_views: int = 1,
) -> DeviceIterator:
  """`pipeline.make_pretrain_iterator`'s batches, made on the device: the same keys, shapes, example
  order and view semantics, global arrays sharded on `mesh` (default: every device on "data").

  Created with start_step=s it yields exactly what a fresh one yields after s batches. Every process of a
  multi-host run computes the same (small) index arrays and gets the global batch.
  """
  entries = check_data_config(data_cfg)
  global_batch = int(data_cfg.batch_size if batch_size is None else batch_size)
  if global_batch < 1 or start_step < 0:
    raise DataError(f"batch_size={global_batch} must be positive and start_step={start_step} >= 0.")
  if num_views not in range(1, V.MAX_GLOBAL_VIEWS + 1):
    raise DataError(f"num_views={num_views!r} must be 1 or {V.MAX_GLOBAL_VIEWS} (global views per image).")
  mesh = mesh or Mesh(np.asarray(jax.devices()), ("data",))
  if global_batch % mesh.shape["data"]:
    raise DataError(f"batch_size={global_batch} is not divisible by the {mesh.shape['data']} devices of the mesh.")
  views = V.ViewConfig.from_data_config(data_cfg, num_global=num_views)
  sources = load_mixture(data_cfg, entries, in_memory=True)
  order = mixture_order(data_cfg, sources, entries, seed)
  starved = [e.name for e, c in zip(entries, order.counts) if c == 0]
  if starved:
    raise DataError(f"Dataset(s) {starved} get no example per epoch at their weight; raise it or remove them.")
  replicated = NamedSharding(mesh, P())
  images = tuple(jax.make_array_from_callback(s.images.shape, replicated, lambda i, x=s.images: x[i]) for s in sources)
  fn = _augment_fn(int(seed), views, mesh, CPU_CHUNK if jax.default_backend() == "cpu" and mesh.size == 1 else 0)
  _log.info(
    "Pretraining data on the device: %s; %d examples/epoch; global batch %d over %d device(s); start step %d; "
    "%d global view(s) of %d px, %d local view(s) of %d px; %.1f MiB of images per device",
    ", ".join(f"{e.name}[{e.split}] x{e.weight:.3f} ({len(s)})" for e, s in zip(entries, sources)),
    order.epoch_length,
    global_batch,
    mesh.shape["data"],
    start_step,
    views.num_global,
    views.global_cfg.image_size,
    views.num_local,
    views.local_cfg.image_size,
    sum(s.images.nbytes for s in sources) / 2**20,
  )
  return DeviceIterator(images, order, mesh, global_batch, start_step, fn)
