"""The order of the pretraining stream, a pure numpy function of (seed, epoch): shared by the tf.data path
(`pipeline.py`) and the device path (`device.py`), and importable without TensorFlow.

An epoch is `sum(sizes)` positions (or data.epoch_examples where set). Source k gets a fixed number of them,
`weight_k * epoch_length` (largest-remainder rounding), at places given by a
seeded shuffle. Within source k the examples come from an endless chain of
seeded permutations of its indices, continued across epochs, so an up-weighted
source repeats examples only after using each once and a down-weighted one
still cycles through all of its examples over several epochs. With a single
dataset and no data.epoch_examples an epoch is exactly one pass in a fresh random order.
"""

import collections
import threading
from typing import Any

import numpy as np

from hjepa_jax.data.local import load_mixture
from hjepa_jax.data.validate import check_data_config

_TAG_SOURCES = 0x50
_TAG_PERMUTATION = 0x51
_CACHE = 4


def _rng(*words: int) -> np.random.Generator:
  return np.random.default_rng(np.random.SeedSequence([w & (2**63 - 1) for w in words]))


def _allocate(total: int, weights: np.ndarray) -> np.ndarray:
  """Integer counts summing to `total`, proportional to `weights` (largest remainder)."""
  exact = weights * total
  counts = np.floor(exact).astype(np.int64)
  short = total - counts.sum()
  order = np.argsort(-(exact - counts), kind="stable")
  counts[order[:short]] += 1
  return counts


class MixtureOrder:
  """The deterministic example order of a weighted mixture of indexable sources."""

  def __init__(self, sizes: list[int], weights: list[float], seed: int, epoch_length: int | None = None):
    if not sizes or min(sizes) <= 0:
      raise ValueError(f"every source needs at least one example, got sizes {sizes}")
    self.sizes = [int(n) for n in sizes]
    self.seed = int(seed)
    self.epoch_length = int(epoch_length or sum(self.sizes))
    self.counts = _allocate(self.epoch_length, np.asarray(weights, np.float64) / np.sum(weights))
    self._lock = threading.Lock()
    self._epochs: collections.OrderedDict[int, tuple[np.ndarray, np.ndarray]] = collections.OrderedDict()
    self._perms: collections.OrderedDict[tuple[int, int], np.ndarray] = collections.OrderedDict()

  def _permutation(self, source: int, index: int) -> np.ndarray:
    key = (source, index)
    perm = self._perms.get(key)
    if perm is None:
      perm = _rng(self.seed, _TAG_PERMUTATION, source, index).permutation(self.sizes[source])
      self._perms[key] = perm
      while len(self._perms) > _CACHE * len(self.sizes):
        self._perms.popitem(last=False)
    return perm

  def _source_stream(self, source: int, start: int, count: int) -> np.ndarray:
    """Entries [start, start + count) of source's endless chain of permutations."""
    n = self.sizes[source]
    out = np.empty(count, np.int64)
    done = 0
    while done < count:
      pos = start + done
      perm = self._permutation(source, pos // n)
      take = min(count - done, n - pos % n)
      out[done : done + take] = perm[pos % n : pos % n + take]
      done += take
    return out

  def epoch(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """(source ids int32, example ids int64), each of length epoch_length."""
    with self._lock:
      cached = self._epochs.get(epoch)
      if cached is not None:
        self._epochs.move_to_end(epoch)
        return cached
      if len(self.sizes) == 1:
        source_ids = np.zeros(self.epoch_length, np.int32)
      else:
        labels = np.repeat(np.arange(len(self.sizes), dtype=np.int32), self.counts)
        source_ids = _rng(self.seed, _TAG_SOURCES, epoch).permutation(labels)
      example_ids = np.empty(self.epoch_length, np.int64)
      for k, count in enumerate(self.counts):
        example_ids[source_ids == k] = self._source_stream(k, epoch * int(count), int(count))
      result = (source_ids, example_ids)
      for a in result:
        a.flags.writeable = False
      self._epochs[epoch] = result
      while len(self._epochs) > _CACHE:
        self._epochs.popitem(last=False)
      return result

  def slice(self, start: int, count: int) -> dict[str, np.ndarray]:
    """Stream positions [start, start + count): source, example, epoch and offset-in-epoch arrays."""
    parts = []
    pos = start
    end = start + count
    while pos < end:
      epoch, offset = divmod(pos, self.epoch_length)
      take = min(end - pos, self.epoch_length - offset)
      sources, examples = self.epoch(epoch)
      parts.append(
        (
          sources[offset : offset + take],
          examples[offset : offset + take],
          np.full(take, epoch, np.int64),
          np.arange(offset, offset + take, dtype=np.int64),
        )
      )
      pos += take
    if not parts:
      parts.append((np.zeros(0, np.int32),) + (np.zeros(0, np.int64),) * 3)
    source, example, epoch_, offset_ = (np.concatenate(c) for c in zip(*parts))
    return dict(source=source, example=example, epoch=epoch_, offset=offset_)


def epoch_length(data_cfg: Any, sizes: list[int]) -> int:
  """Draws in one pretraining epoch of a mixture of datasets of `sizes`: data.epoch_examples, else their sum."""
  return int(data_cfg.epoch_examples or sum(sizes))


def mixture_order(data_cfg: Any, sources: list, entries: list, seed: int) -> MixtureOrder:
  """The order of the loaded `sources` of the checked mixture `entries` (both pipelines use this one)."""
  sizes = [len(s) for s in sources]
  return MixtureOrder(sizes, [e.weight for e in entries], seed, epoch_length(data_cfg, sizes))


def pretrain_num_examples(data_cfg: Any) -> int:
  """Examples in one pretraining epoch (after checking `data_cfg`): data.epoch_examples, else the sum of the
  mixed datasets' sizes.

  With weights, an epoch is still that many draws, shared between datasets in
  proportion to their weights (see `MixtureOrder`), so an epoch-based schedule
  keeps its length when the weights change.
  """
  return epoch_length(data_cfg, [len(s) for s in load_mixture(data_cfg, check_data_config(data_cfg))])
