"""Metric writers that work with or without TensorFlow.

`from clu import metric_writers` imports TensorFlow, which the accelerator machines lack. Where
TensorFlow imports, `create_default_writer` is clu's (logging + TF summaries, asynchronous); where it
does not, it is `EventWriter`: the same methods train.py calls (write_scalars, write_images,
write_summaries, write_hparams, flush, close), writing the same TensorBoard events (TF2 tensor summaries
with the scalars / images / histograms / hparams plugin metadata) through the `tensorboard` package's TF-free
EventFileWriter and protos, with PNGs encoded by zlib. `tools/events.py` and TensorBoard read both.

Histograms are binned on the device (`train_step.leaf_histograms`), so `write_histograms` writes the
finished buckets through either writer's `write_summaries` (clu's `write_histograms` wants the raw arrays).
"""

import contextlib
import logging
import struct
import time
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np


def create_default_writer(logdir: str, *, just_logging: bool = False):
  """clu's default writer where TensorFlow imports, else an `EventWriter` (no event file if just_logging)."""
  try:
    from clu import metric_writers  # pylint: disable=g-import-not-at-top  (imports TensorFlow)
  except ImportError:
    logging.info("TensorFlow is not importable: TensorBoard events are written by the tensorboard package")
    return EventWriter(None if just_logging else logdir)
  return metric_writers.create_default_writer(logdir, just_logging=just_logging)


@contextlib.contextmanager
def ensure_flushes(writer):
  """clu.metric_writers.ensure_flushes for either writer: flushes on the way out, also on an exception."""
  try:
    yield writer
  finally:
    writer.flush()


def encode_png(image: np.ndarray) -> bytes:
  """PNG bytes of a uint8 [H, W, C] image (C = 1, 3 or 4), with zlib alone (no PIL needed)."""
  h, w, c = image.shape
  color = {1: 0, 3: 2, 4: 6}[c]

  def chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

  rows = np.concatenate([np.zeros((h, 1), np.uint8), np.ascontiguousarray(image, np.uint8).reshape(h, w * c)], 1)
  return (
    b"\x89PNG\r\n\x1a\n"
    + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0))
    + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
    + chunk(b"IEND", b"")
  )


def histogram_tensor(counts, lo, hi) -> np.ndarray:
  """float64 [bins, 3] rows (left edge, right edge, count): the tensor tf.summary.histogram writes."""
  counts = np.asarray(counts, np.float64)
  edges = np.linspace(float(lo), float(hi), len(counts) + 1)
  return np.stack([edges[:-1], edges[1:], counts], 1)


def write_histograms(writer, step: int, histograms: Mapping[str, Any], names: Mapping[str, list]) -> None:
  """TensorBoard Histograms-tab summaries `{group}/{leaf name}` from `train_step.leaf_histograms` outputs.

  histograms: {group: {"counts" (L, bins), "min" (L,), "max" (L,)}}; names: {group: the L leaf names}.
  """
  from tensorboard.plugins.histogram import metadata  # pylint: disable=g-import-not-at-top

  values, meta = {}, {}
  for group, h in histograms.items():
    for i, name in enumerate(names[group]):
      tag = f"{group}/{name}"
      values[tag] = histogram_tensor(h["counts"][i], h["min"][i], h["max"][i])
      meta[tag] = metadata.create_summary_metadata(tag, "").SerializeToString()
  writer.write_summaries(step, values, metadata=meta)


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
  """clu's hparams flattening: nested keys and sequence indices joined by '.', None as ''."""
  out = {}
  for k, v in d.items():
    if hasattr(v, "items"):
      out.update(_flatten(v, f"{prefix}{k}."))
    elif isinstance(v, (list, tuple)):
      out.update(_flatten({str(i): x for i, x in enumerate(v)}, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = "" if v is None else v
  return out


class EventWriter:
  """A TensorFlow-free metric writer: log lines (absl's logger, as clu's LoggingWriter) plus, with a logdir,
  one TensorBoard event file."""

  def __init__(self, logdir: str | None):
    self._file = None
    if logdir is not None:
      from tensorboard.summary.writer.event_file_writer import EventFileWriter  # pylint: disable=g-import-not-at-top

      self._file = EventFileWriter(logdir)

  def _write(self, step: int, summary) -> None:
    if self._file is not None:
      from tensorboard.compat.proto import event_pb2  # pylint: disable=g-import-not-at-top

      self._file.add_event(event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary))

  def _value(self, tag: str, tensor: np.ndarray, metadata):
    from tensorboard.compat.proto import summary_pb2  # pylint: disable=g-import-not-at-top
    from tensorboard.util import tensor_util  # pylint: disable=g-import-not-at-top

    return summary_pb2.Summary.Value(tag=tag, tensor=tensor_util.make_tensor_proto(tensor), metadata=metadata)

  def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
    from tensorboard.compat.proto import summary_pb2  # pylint: disable=g-import-not-at-top
    from tensorboard.plugins.scalar import metadata  # pylint: disable=g-import-not-at-top

    logging.getLogger("absl").info("[%d] %s", step, ", ".join(f"{k}={float(v):.6g}" for k, v in scalars.items()))
    values = [
      self._value(k, np.asarray(float(v), np.float32), metadata.create_summary_metadata(k, ""))
      for k, v in scalars.items()
    ]
    self._write(step, summary_pb2.Summary(value=values))

  def write_images(self, step: int, images: Mapping[str, Any]) -> None:
    """Images [N, H, W, C] or [H, W, C]: uint8, or floats in [0, 1] (as tf.summary.image takes them)."""
    from tensorboard.compat.proto import summary_pb2  # pylint: disable=g-import-not-at-top
    from tensorboard.plugins.image import metadata  # pylint: disable=g-import-not-at-top

    values = []
    for tag, batch in images.items():
      batch = np.asarray(batch)
      batch = batch[None] if batch.ndim == 3 else batch
      if batch.dtype != np.uint8:
        batch = np.round(np.clip(batch.astype(np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)
      h, w = batch.shape[1:3]
      data = np.asarray([str(w).encode(), str(h).encode()] + [encode_png(x) for x in batch], dtype=object)
      values.append(self._value(tag, data, metadata.create_summary_metadata(tag, "")))
    self._write(step, summary_pb2.Summary(value=values))

  def write_summaries(self, step: int, values: Mapping[str, Any], metadata: Mapping[str, Any] | None = None) -> None:
    """Tensor summaries with their plugin metadata (a SummaryMetadata or its bytes), as clu's write_summaries."""
    from tensorboard.compat.proto import summary_pb2  # pylint: disable=g-import-not-at-top

    out = []
    for tag, value in values.items():
      meta = (metadata or {}).get(tag)
      if isinstance(meta, bytes):
        meta = summary_pb2.SummaryMetadata.FromString(meta)
      out.append(self._value(tag, np.asarray(value), meta))
    self._write(step, summary_pb2.Summary(value=out))

  def write_hparams(self, hparams: Mapping[str, Any]) -> None:
    from tensorboard.plugins.hparams import summary_v2  # pylint: disable=g-import-not-at-top

    self._write(0, summary_v2.hparams_pb(_flatten(hparams)))

  def flush(self) -> None:
    if self._file is not None:
      self._file.flush()

  def close(self) -> None:
    if self._file is not None:
      self._file.close()
