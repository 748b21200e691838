"""The pretraining input pipeline: deterministic, resumable, split across hosts.

Which (source, example) sits at each position of the infinite pretraining stream
(`order.MixtureOrder`) is a pure numpy function of (seed, epoch), so a run resumed at step
s can jump straight to position s * global_batch_size without touching the
examples before it.

Global batch b covers positions [b * B, (b + 1) * B) of that stream; host i of P
takes the contiguous slice starting at b * B + i * B / P. Python generators emit,
per batch, the indices (and for in-memory sources the raw pixels) of each source's
share of that slice; tf.data decodes and augments them in parallel with
deterministic ordering and `choose_from_datasets` puts the elements back in stream
order. A pipeline created at step s therefore yields exactly what an uninterrupted
one yields from its s-th batch on, without decoding anything before it.
"""

import atexit
import itertools
import logging
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import tensorflow as tf

from hjepa_jax.data import augment
from hjepa_jax.data.local import Source, load_mixture
from hjepa_jax.data.order import MixtureOrder, mixture_order, pretrain_num_examples  # noqa: F401  (pretrain_num_examples: API)
from hjepa_jax.data.folders import record_skipped
from hjepa_jax.data.sources import MAX_CONSECUTIVE_BAD, decode_with_fallback, skipped_paths
from hjepa_jax.data.validate import DataError, check_data_config

_log = logging.getLogger(__name__)
_live_iterators: "weakref.WeakSet[PretrainIterator]" = weakref.WeakSet()


# --- The tf.data pipeline ---------------------------------------------------------------------


class PretrainIterator(Iterator[dict[str, np.ndarray]]):
  """Infinite iterator of {"image": uint8 [local_batch, S, S, 3]} batches, plus
  "image_view2" uint8 [local_batch, S, S, 3] with a second global view and
  "local" uint8 [local_batch, num_local, s, s, 3] with multi-crop views when
  those are on (see `make_pretrain_iterator`).

  `skipped_files` lists unreadable image files passed over so far (they were
  replaced by the next readable file of the same source).
  """

  def __init__(self, dataset: tf.data.Dataset, sources: list[Source], corrupt_images: str = "skip"):
    self._it = dataset.as_numpy_iterator()
    self._sources = sources
    self._corrupt_images = corrupt_images
    self.skipped_files: list[str] = []
    _live_iterators.add(self)

  def close(self) -> None:
    """Releases the tf.data iterator and its generator threads."""
    self._it = None

  def __next__(self) -> dict[str, np.ndarray]:
    if self._it is None:
      raise StopIteration
    batch = next(self._it)
    source, example, skipped = batch.pop("source"), batch.pop("example"), batch.pop("skipped")
    if skipped.any():
      self._record_skips(source, example, skipped)
    return batch

  def _record_skips(self, source, example, skipped) -> None:
    for k in np.unique(source[skipped != 0]):
      src = self._sources[k]
      rows = (source == k) & (skipped != 0)
      counts = np.where(skipped[rows] < 0, MAX_CONSECUTIVE_BAD, skipped[rows])
      bad = skipped_paths(src.paths, example[rows], counts)
      record_skipped(bad, self._corrupt_images)
      self.skipped_files.extend(p for p in dict.fromkeys(bad) if p not in self.skipped_files)
      if (skipped[rows] < 0).any():
        raise DataError(
          f"{MAX_CONSECUTIVE_BAD} consecutive unreadable images in {src.description} "
          f"(e.g. {bad[0]}): the dataset folder looks damaged. Check the files or re-extract them."
        )


@atexit.register
def _close_live_iterators() -> None:
  # tf.data generator iterators finalised after Python shuts down print errors.
  for it in list(_live_iterators):
    it.close()


def _source_dataset(
  k: int,
  source: Source,
  order: MixtureOrder,
  first_positions: Callable[[], Iterator[int]],
  local_batch: int,
  seed: int,
  views: augment.ViewConfig,
  parallel: int,
) -> tf.data.Dataset:
  """Augmented elements of source k, in the order they occur in this host's stream.

  Every view is cut from the same source image: in-memory pixels are gathered
  once, image files decoded once, then cropped once per view.
  """
  in_memory = source.in_memory

  def chunks():
    # Per batch: source k's share of this host's slice (raw pixels too when in memory).
    for start in first_positions():
      sl = order.slice(start, local_batch)
      mine = sl["source"] == k
      out = {"example": sl["example"][mine], "epoch": sl["epoch"][mine], "offset": sl["offset"][mine]}
      if in_memory:
        out["image"] = source.images[out["example"]]
      yield out

  signature = {n: tf.TensorSpec([None], tf.int64) for n in ("example", "epoch", "offset")}
  if in_memory:
    signature["image"] = tf.TensorSpec((None,) + source.images.shape[1:], tf.uint8)

  def draw(chunk):
    # Vectorised over the chunk and views; file images' boxes wait for their decoded size.
    chunk["u"] = augment.view_uniforms(seed, chunk["epoch"], chunk["offset"], views.view_ids)
    if in_memory:
      _, h, w, _ = source.images.shape
      chunk["box"] = augment.view_boxes(chunk["u"], h, w, views)
      chunk["skipped"] = tf.zeros_like(chunk["example"], tf.int32)
    return chunk

  ds = tf.data.Dataset.from_generator(chunks, output_signature=signature)
  ds = ds.map(draw, num_parallel_calls=parallel, deterministic=True).unbatch()
  if not in_memory:
    paths = tf.constant(source.paths)

    def load(e):
      loaded = decode_with_fallback(paths, e["example"])
      return loaded.map(lambda image, skipped: dict(e, image=image, skipped=skipped))

    ds = ds.interleave(load, num_parallel_calls=parallel, deterministic=True)

  @tf.autograph.experimental.do_not_convert  # plain TF ops only; converting them took seconds per view
  def finish(e):
    if in_memory:
      out = augment.apply_views(e["image"], e["u"], e["box"], views)
    else:
      out = augment.augment_views(e["image"], e["u"], views)
    return dict(out, source=tf.constant(k, tf.int32), example=e["example"], skipped=e["skipped"])

  return ds.map(finish, num_parallel_calls=parallel, deterministic=True)


def make_pretrain_iterator(
  data_cfg: Any,
  *,
  seed: int,
  start_step: int = 0,
  process_index: int = 0,
  process_count: int = 1,
  batch_size: int | None = None,
  num_views: int = 1,
) -> PretrainIterator:
  """Infinite iterator of augmented uint8 pretraining batches for this host.

  `batch_size` (default data_cfg.batch_size) is the GLOBAL batch; each of the
  `process_count` hosts gets its contiguous 1/process_count of every global
  batch. Created with start_step=s, it yields exactly what a fresh iterator
  yields after s batches.

  Batch keys: "image" [B, S, S, 3], a random-resized crop (+ flip / 3-Augment)
  of each example; with `num_views`=2 (global views, e.g. for a two-view
  contrastive or VICReg loss) also "image_view2" [B, S, S, 3], an independent
  crop of the same source image; with data_cfg.multicrop.num_local = L > 0
  also "local" [B, L, s, s, 3] (s = multicrop.local_size), L independent crops
  of the same image with area fractions in multicrop.local_scale. All uint8.
  Each view's randomness depends only on (seed, epoch, position, view), so
  "image" is the same whichever other views are on.
  """
  entries = check_data_config(data_cfg)  # config.data; the arguments are checked here
  if batch_size is not None and batch_size < 1:
    raise DataError(f"batch_size={batch_size} must be positive.")
  global_batch = int(data_cfg.batch_size if batch_size is None else batch_size)
  if process_count < 1 or not 0 <= process_index < process_count:
    raise DataError(f"process_index={process_index} must be in [0, process_count={process_count}).")
  if global_batch % process_count:
    raise DataError(
      f"Global batch size {global_batch} is not divisible by process_count={process_count}; "
      "choose a batch size that is a multiple of the number of hosts."
    )
  if start_step < 0:
    raise DataError(f"start_step={start_step} must be >= 0.")
  if num_views not in range(1, augment.MAX_GLOBAL_VIEWS + 1):
    raise DataError(f"num_views={num_views!r} must be 1 or {augment.MAX_GLOBAL_VIEWS} (global views per image).")
  seed = int(seed)
  views = augment.ViewConfig.from_data_config(data_cfg, num_global=num_views)
  parallel = tf.data.AUTOTUNE if data_cfg.num_parallel_calls == -1 else int(data_cfg.num_parallel_calls)
  prefetch = int(data_cfg.prefetch)
  sources = load_mixture(data_cfg, entries)
  order = mixture_order(data_cfg, sources, entries, seed)
  starved = [e.name for e, c in zip(entries, order.counts) if c == 0]
  if starved:
    raise DataError(
      f"Dataset(s) {starved} get no example per epoch at their weight (epoch = {order.epoch_length} "
      "examples). Raise their weight or remove them from config.data.datasets."
    )
  local_batch = global_batch // process_count

  def first_positions():
    return (b * global_batch + process_index * local_batch for b in itertools.count(start_step))

  per_source = [
    _source_dataset(k, s, order, first_positions, local_batch, seed, views, parallel) for k, s in enumerate(sources)
  ]
  if len(per_source) == 1:
    ds = per_source[0]
  else:

    def choices():
      for start in first_positions():
        yield order.slice(start, local_batch)["source"].astype(np.int64)

    choice_ds = tf.data.Dataset.from_generator(choices, output_signature=tf.TensorSpec([None], tf.int64))
    ds = tf.data.Dataset.choose_from_datasets(per_source, choice_ds.unbatch())
  ds = ds.batch(local_batch, drop_remainder=True)
  if prefetch:
    ds = ds.prefetch(tf.data.AUTOTUNE if prefetch == -1 else prefetch)
  options = tf.data.Options()
  options.deterministic = True
  ds = ds.with_options(options)
  _log.info(
    "Pretraining data: %s; %d examples/epoch; global batch %d, host %d/%d gets %d; start step %d; "
    "%d global view(s) of %d px, %d local view(s) of %d px",
    ", ".join(f"{e.name}[{e.split}] x{e.weight:.3f} ({len(s)})" for e, s in zip(entries, sources)),
    order.epoch_length,
    global_batch,
    process_index,
    process_count,
    local_batch,
    start_step,
    views.num_global,
    views.global_cfg.image_size,
    views.num_local,
    views.local_cfg.image_size,
  )
  return PretrainIterator(ds, sources, data_cfg.corrupt_images)
