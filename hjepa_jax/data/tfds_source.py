"""TFDS datasets (cifar10, stl10) loaded whole into memory as uint8 numpy.

CIFAR-10 and STL-10 fit in RAM (STL-10 "unlabelled+train" is 105k x 96 x 96 x 3
= 2.9 GB; set data.max_stored_size to shrink it), and in-memory arrays are what
makes exact resumption cheap. Nothing here waits on the network: a dataset that
is not prepared fails within seconds with the offline alternatives spelled out.
"""

import logging
import socket
import threading

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from hjepa_jax.data import transforms
from hjepa_jax.data.errors import DataError

_log = logging.getLogger(__name__)
PROBE_HOST = ("storage.googleapis.com", 443)
PROBE_TIMEOUT_S = 3.0


def network_available(host: tuple[str, int] = PROBE_HOST, timeout: float = PROBE_TIMEOUT_S) -> bool:
  """True if a TCP connection to `host` opens within `timeout` seconds.

  Runs in a daemon thread because DNS resolution ignores socket timeouts.
  """
  ok = []

  def probe():
    try:
      socket.create_connection(host, timeout=timeout).close()
      ok.append(True)
    except OSError:
      pass

  t = threading.Thread(target=probe, daemon=True)
  t.start()
  t.join(timeout)
  return bool(ok)


def _offline_options(name: str) -> str:
  local = ""
  if name == "cifar10":
    local = "use dataset 'cifar10_local' with --config.data.cifar10_dir=PATH to the python-pickle folder, "
  return (
      f"Offline options: {local}point --config.data.tfds_data_dir=DIR at a folder where {name} has been "
      f"prepared (e.g. copied from a machine that ran tfds.builder('{name}').download_and_prepare()), "
      "or set --config.data.download=True on a machine with network access."
  )


def load(
    name: str, split: str, *, data_dir: str | None, download: bool, max_size: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
  """uint8 images [N, H, W, 3] and int32 labels (-1 where unlabelled).

  Images larger than `max_size` are downscaled while streaming, so the
  full-resolution copy never sits in memory.
  """
  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except Exception as e:  # noqa: BLE001 - TFDS raises many types here
    raise DataError(f"TFDS cannot create a builder for {name!r} (data_dir={data_dir}): {e}") from e
  if download:
    if not network_available():
      raise DataError(
          f"--config.data.download=True but there is no network (no connection to {PROBE_HOST[0]} "
          f"within {PROBE_TIMEOUT_S:.0f} s), so TFDS dataset {name!r} cannot be downloaded. "
          + _offline_options(name)
      )
    try:
      builder.download_and_prepare()
    except Exception as e:  # noqa: BLE001
      raise DataError(f"Downloading/preparing TFDS dataset {name!r} into {builder.data_dir} failed: {e}") from e
  try:
    ds = builder.as_dataset(split=split, shuffle_files=False)
  except (AssertionError, FileNotFoundError) as e:
    raise DataError(
        f"TFDS dataset {name!r} is not prepared in {data_dir or 'the default TFDS data_dir'} "
        f"and --config.data.download is False. {_offline_options(name)}"
    ) from e
  except ValueError as e:  # unknown split
    raise DataError(f"TFDS dataset {name!r} has no split {split!r}: {e}") from e
  ds = ds.map(
      lambda ex: (transforms.shrink_to_max_size(ex["image"], max_size), tf.cast(ex["label"], tf.int32)),
      num_parallel_calls=tf.data.AUTOTUNE,
      deterministic=True,
  )
  images, labels = _collect(tfds.as_numpy(ds.batch(1024)), _known_size(builder, split))
  if not len(images):
    raise DataError(f"TFDS dataset {name!r} split {split!r} is empty.")
  _log.info("Loaded TFDS %s[%s]: %d images of %s", name, split, len(images), images.shape[1:])
  return images, labels


def _known_size(builder, split: str) -> int | None:
  try:
    return int(builder.info.splits[split].num_examples) or None
  except Exception:  # noqa: BLE001 - unprepared or mocked builders know no sizes
    return None


def _collect(batches, size: int | None) -> tuple[np.ndarray, np.ndarray]:
  """Stacks batches, writing into one preallocated array when the size is known
  (avoids a second 2.9 GB copy for STL-10)."""
  if size is None:
    parts = list(batches)
    if not parts:
      return np.zeros((0, 1, 1, 3), np.uint8), np.zeros((0,), np.int32)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
  images = labels = None
  n = 0
  for x, y in batches:
    if images is None:
      images = np.empty((size,) + x.shape[1:], np.uint8)
      labels = np.empty((size,), np.int32)
    if n + len(x) > size:
      raise DataError(f"TFDS yielded more than the {size} examples its metadata promised; re-prepare it.")
    images[n : n + len(x)], labels[n : n + len(y)] = x, y
    n += len(x)
  if images is None:
    return np.zeros((0, 1, 1, 3), np.uint8), np.zeros((0,), np.int32)
  return images[:n], labels[:n]
