"""Training where TensorFlow cannot be imported (as on the accelerator machines): the device input path, the
TF-free loaders and evaluation data, and the TensorBoard writer. tests/no_tensorflow/sitecustomize.py hides
TensorFlow from the subprocesses."""

import io
import os
import subprocess
import sys

import numpy as np
import pytest

from hjepa_jax import checkpoint, writers
from hjepa_jax.tools import events
from tests import _smoke
from tests._data import write_fake_cifar10
from tests._smoke import NO_TENSORFLOW_ENV, TF_FREE_STEPS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_NO_TF_SCRIPT = """
import importlib.util, sys
assert importlib.util.find_spec("tensorflow") is None
from hjepa_jax import train, writers  # everything the training loop imports
from hjepa_jax.data import default_data_config, load_eval_data, make_device_iterator, pretrain_num_examples
cfg = default_data_config()
cfg.datasets, cfg.cifar10_dir, cfg.image_size, cfg.batch_size = ("cifar10_local",), sys.argv[1], 16, 8
cfg.pipeline, cfg.deit3_strength, cfg.eval_max_examples = "device", 1.0, 8
assert pretrain_num_examples(cfg) == 100
import jax, numpy as np
from jax.sharding import Mesh
four = next(make_device_iterator(cfg, seed=0, num_views=2))  # 4 forced CPU devices: sharded, whole batch at once
one = next(make_device_iterator(cfg, seed=0, num_views=2, mesh=Mesh(np.asarray(jax.devices()[:1]), ("data",))))
assert four["image"].shape == (8, 16, 16, 3) and len(four["image"].sharding.device_set) == 4
for k in four:  # the same batch on one device (in chunks of examples)
  np.testing.assert_array_equal(np.asarray(four[k]), np.asarray(one[k]))
assert load_eval_data(cfg)["test"][0].shape == (8, 16, 16, 3)  # resized 32 -> 16 px without TensorFlow
assert not [m for m in sys.modules if m.split(".")[0] in ("tensorflow", "tensorflow_datasets")]
print("no tensorflow")
"""


def test_device_path_and_evaluation_data_import_no_tensorflow(tmp_path):
  """cifar10_local through the device path and the evaluation loader with TensorFlow hidden; and the device
  path's batch is the same on a 4-device mesh as on one device."""
  write_fake_cifar10(tmp_path, per_batch=20)
  env = _smoke.with_xla_flag(dict(os.environ, **NO_TENSORFLOW_ENV), "--xla_force_host_platform_device_count=4")
  env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], ROOT])
  proc = subprocess.run(
    [sys.executable, "-c", _NO_TF_SCRIPT, str(tmp_path)], env=env, capture_output=True, text=True, timeout=300
  )
  assert proc.returncode == 0 and "no tensorflow" in proc.stdout, (proc.stdout + proc.stderr)[-3000:]


def test_training_checkpoints_resumes_and_logs_without_tensorflow(tf_free_runs):
  """launch/main.py with TensorFlow hidden and data.pipeline=device: checkpoints, an in-training k-NN,
  TensorBoard events; the same command with twice the steps resumes and ends bit-exact where an
  uninterrupted run ends; one compile of the step and one of the input per run."""
  for job, (code, out, workdir) in tf_free_runs.items():
    assert code == 0, f"{job}: {out[-3000:]}"
    assert "TensorFlow is not importable" in out, out[-3000:]
  _, _, workdir = tf_free_runs["tf_free_resumed"]
  log = open(os.path.join(workdir, "logs", "training.log")).read()
  assert f"at step {TF_FREE_STEPS}" in log and f"eval at step {TF_FREE_STEPS}" in log  # "resumed from ... at step N"
  assert log.count("programs compiled: train_step 1, device input 1") == 2, log
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == [str(s) for s in (6, 8)]
  scalars = events.read_scalars(workdir)
  np.testing.assert_array_equal(scalars["train/loss"][0], [2, 4, 6, 8])
  assert "eval/knn_top1_k20" in scalars and np.all(np.isfinite(scalars["train/loss"][1]))
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top

  written = event_accumulator.EventAccumulator(workdir, size_guidance={"tensors": 0})
  written.Reload()
  assert "train/masks" in written.Tags()["tensors"]  # the mask images, PNGs written without TensorFlow
  step_a, a = checkpoint.restore_for_eval(workdir)
  step_b, b = checkpoint.restore_for_eval(tf_free_runs["tf_free_reference"][2])
  assert step_a == step_b == 2 * TF_FREE_STEPS
  reference = events.read_scalars(tf_free_runs["tf_free_reference"][2])["train/loss"]
  np.testing.assert_array_equal(scalars["train/loss"][1], reference[1])
  import jax  # pylint: disable=g-import-not-at-top

  jax.tree_util.tree_map(np.testing.assert_array_equal, a, b)


def test_event_writer_scalars_and_images_read_back(tmp_path):
  """The TF-free writer's events: scalars through tools/events.py, images as PNGs that PIL decodes."""
  writer = writers.EventWriter(str(tmp_path))
  writer.write_hparams({"a": {"b": 1, "c": (1.0, None)}})
  writer.write_scalars(3, {"train/loss": 0.5})
  image = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3) * 4
  writer.write_images(3, {"train/masks": image[None]})
  writer.close()
  assert events.read_scalars(str(tmp_path))["train/loss"][1].tolist() == [0.5]
  Image = pytest.importorskip("PIL.Image")
  np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(writers.encode_png(image)))), image)
