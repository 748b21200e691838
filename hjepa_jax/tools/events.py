"""Scalars of a run's TensorBoard event files, read without TensorFlow.

tensorboard's `EventFileLoader` / `EventAccumulator` import TensorFlow whenever it is installed
(always here: the data pipelines need it), which costs seconds and a few hundred MB beside a
training run. They fall back on a pure-Python TFRecord reader (CRC-checked) only where TF is
absent; that reader and `tensor_util` are used here directly, so the same code runs either way.
"""

import glob
import os

import numpy as np
from tensorboard.compat.proto import event_pb2
from tensorboard.compat.tensorflow_stub import errors
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import PyRecordReader_New
from tensorboard.util import tensor_util


def _events(path):
  """Events of one file; stops quietly at a truncated or corrupt record (one still being written)."""
  reader = PyRecordReader_New(path)
  try:
    while True:
      try:
        reader.GetNext()
      except (errors.OutOfRangeError, errors.DataLossError):
        return
      yield event_pb2.Event.FromString(reader.record())
  finally:
    reader.file_handle.close()


def read_scalars(run_dir):
  """{tag: (steps int64 array, values float64 array)} from every event file in `run_dir` (not recursive).

  Reads TF2 scalar summaries (tensors with the `scalars` plugin, what clu writes) and TF1 simple
  values; where files overlap (a resumed run) the later file's value for a step wins.
  """
  merged = {}
  for path in sorted(glob.glob(os.path.join(run_dir, "events.out.tfevents.*")), key=os.path.getmtime):
    for event in _events(path):
      for v in event.summary.value:
        if v.HasField("simple_value"):
          value = v.simple_value
        elif v.metadata.plugin_data.plugin_name == "scalars":
          value = tensor_util.make_ndarray(v.tensor).item()
        else:
          continue
        merged.setdefault(v.tag, {})[int(event.step)] = float(value)
  return {
    tag: (np.array(sorted(d), np.int64), np.array([d[s] for s in sorted(d)], np.float64)) for tag, d in merged.items()
  }


def last_values(scalars):
  """{tag: value at its last step}."""
  return {tag: float(v[-1]) for tag, (_, v) in scalars.items() if len(v)}
