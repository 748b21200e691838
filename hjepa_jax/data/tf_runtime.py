"""Keeps TensorFlow on the CPU so it never competes with JAX for accelerator memory."""

import logging
import threading

import tensorflow as tf

_log = logging.getLogger(__name__)
_lock = threading.Lock()
_done = False


def ensure_cpu_only() -> None:
  """Hides every GPU from TensorFlow; called before the first pipeline is built."""
  global _done
  with _lock:
    if _done:
      return
    _done = True
    try:
      tf.config.set_visible_devices([], "GPU")
    except RuntimeError as e:  # devices were already initialised elsewhere
      if tf.config.get_visible_devices("GPU"):
        _log.warning("TensorFlow already initialised GPUs; data pipelines may use one: %s", e)
