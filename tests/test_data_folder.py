"""Your own images: the image_folder dataset (ROOT/<split>/<class>/*.{jpg,jpeg,png}) on both input paths, as
a pretraining source in a mixture and as the evaluation dataset; classes, the val hold-out, corrupt files."""

import json
import logging
import os
import subprocess
import sys

import numpy as np
import pytest

import hjepa_jax.data as data
from hjepa_jax.data import folders
from tests._data import fresh_cache  # noqa: F401  (autouse: an empty dataset cache per test)
from tests._data import write_image_folder
from tests._smoke import QUIET, ROOT, TINY_MODEL


def _cfg(root=None, **overrides):
  cfg = data.default_data_config()
  cfg.image_folder.dir = str(root) if root else None
  cfg.datasets, cfg.eval_dataset = ("image_folder",), "image_folder"
  for k, v in overrides.items():
    cfg[k] = v
  return cfg


def test_classes_are_sorted_folder_names_and_the_startup_line_counts_them(tmp_path, caplog):
  written = write_image_folder(tmp_path, classes=("zebra", "ant", "moth"), per_class=2, splits=("train", "val", "test"))
  (tmp_path / "train" / "moth" / "notes.txt").write_text("not an image")
  cfg = _cfg(tmp_path)
  with caplog.at_level(logging.INFO, logger="hjepa_jax.data.folders"):
    assert data.num_classes("image_folder", cfg) == 3
    paths, labels = folders.scan_folder(folders.folder_spec("image_folder", cfg), "train")
  assert [m for m in caplog.messages if "3 classes" in m and "train 6, val 6, test 6" in m]
  names = ("ant", "moth", "zebra")
  assert sorted(zip(map(str, paths), labels.tolist())) == sorted((str(p), names.index(c)) for p, c in written["train"])
  x, y = data.load_labelled("image_folder", "test", cfg, image_size=16)
  assert x.shape == (6, 16, 16, 3) and sorted(y.tolist()) == [0, 0, 1, 1, 2, 2]


def test_an_empty_class_folder_counts_as_a_class_with_a_warning_naming_it(tmp_path, caplog):
  write_image_folder(tmp_path, classes=("cat", "bee"), per_class=2, splits=("train", "val"))
  (tmp_path / "train" / "ant").mkdir()  # sorts first: label 0, without an image
  (tmp_path / "train" / "dog").mkdir()
  (tmp_path / "train" / "dog" / "notes.txt").write_text("not an image")
  cfg = _cfg(tmp_path)
  with caplog.at_level(logging.WARNING, logger="hjepa_jax.data.folders"):
    assert data.num_classes("image_folder", cfg) == 4  # counted (labels follow the sorted folder names) ...
  warned = [m for m in caplog.messages if "hold no image" in m]
  assert len(warned) == 1 and "image_folder train: 2 of 4 class folders" in warned[0], caplog.messages  # ... named
  assert "ant, dog" in warned[0] and str(tmp_path / "train") in warned[0], warned[0]
  _, y = data.load_labelled("image_folder", "train", cfg, image_size=8)
  assert sorted(y.tolist()) == [1, 1, 2, 2]  # bee, cat
  data.clear_cache()
  caplog.clear()
  (tmp_path / "train" / "ant").rmdir()
  (tmp_path / "classes.txt").write_text("cat\nbee\n")
  cfg.image_folder.classes_file = str(tmp_path / "classes.txt")
  with caplog.at_level(logging.WARNING, logger="hjepa_jax.data.folders"):
    assert data.num_classes("image_folder", cfg) == 2
    folders.scan_folder(folders.folder_spec("image_folder", cfg), "train")
  assert not [m for m in caplog.messages if "hold no image" in m], caplog.messages  # dog/ is not a listed class


def test_class_list_file_sets_labels_and_ignores_other_folders(tmp_path):
  write_image_folder(tmp_path / "d", classes=("a", "b", "c"), per_class=2)
  (tmp_path / "classes.txt").write_text("c\n\na\n")
  cfg = _cfg(tmp_path / "d")
  cfg.image_folder.classes_file = str(tmp_path / "classes.txt")
  assert data.num_classes("image_folder", cfg) == 2
  _, y = data.load_labelled("image_folder", "val", cfg, image_size=8)
  assert sorted(y.tolist()) == [0, 0, 1, 1]  # c -> 0, a -> 1, b unlisted
  (tmp_path / "classes.txt").write_text("a\na\n")
  with pytest.raises(data.DataError, match="distinct class names"):
    data.num_classes("image_folder", cfg)


def test_val_held_out_of_train_when_there_is_no_val_folder(tmp_path):
  written = write_image_folder(tmp_path, classes=("a", "b"), per_class=8, splits=("train",))
  cfg = _cfg(tmp_path)
  with pytest.raises(data.DataError, match=r"val does not exist.*image_folder.val_fraction"):
    data.load_labelled("image_folder", "val", cfg)
  data.clear_cache()
  cfg.image_folder.val_fraction = 0.25
  spec = folders.folder_spec("image_folder", cfg)
  train, val = folders.scan_folder(spec, "train"), folders.scan_folder(spec, "val")
  assert np.bincount(val[1]).tolist() == [2, 2] and np.bincount(train[1]).tolist() == [6, 6]  # per class
  assert set(train[0]) | set(val[0]) == {str(p) for p, _ in written["train"]} and not set(train[0]) & set(val[0])
  data.clear_cache()
  assert folders.scan_folder(spec, "val")[0].tolist() == val[0].tolist()  # seeded: the same files every run
  assert folders.scan_folder(spec, "test")[0].tolist() == val[0].tolist()  # "test" means val without test/
  assert data.pretrain_num_examples(cfg) == 12  # pretraining sees only what is not held out


def test_missing_root_and_empty_folders_say_what_to_do(tmp_path):
  with pytest.raises(data.DataError, match=r"needs --config.data.image_folder.dir=ROOT"):
    data.pretrain_num_examples(_cfg())
  with pytest.raises(data.DataError, match="does not exist"):
    data.pretrain_num_examples(_cfg(tmp_path / "nowhere"))
  (tmp_path / "train").mkdir()
  with pytest.raises(data.DataError, match="no class folders"):
    data.pretrain_num_examples(_cfg(tmp_path))
  cfg = _cfg(tmp_path)
  cfg.image_folder.val_fraction = 1.0
  with pytest.raises(data.DataError, match=r"image_folder.val_fraction.*\[0, 1\)"):
    data.pretrain_num_examples(cfg)
  with pytest.raises(data.DataError, match="corrupt_images"):
    data.pretrain_num_examples(_cfg(tmp_path, corrupt_images="ignore"))


@pytest.mark.parametrize("pipeline", ["tfdata", "device"])
def test_corrupt_file_is_skipped_and_named_or_an_error(tmp_path, pipeline, caplog):
  write_image_folder(tmp_path, classes=("a", "b"), per_class=3, corrupt=("train", "val"))
  cfg = _cfg(tmp_path, pipeline=pipeline, image_size=16, batch_size=4)
  with caplog.at_level(logging.WARNING):
    x, y = data.load_labelled("image_folder", "val", cfg)
  assert x.shape == (6, 16, 16, 3) and sorted(y.tolist()) == [0, 0, 0, 1, 1, 1]
  assert any("broken.jpg" in m for m in caplog.messages)
  assert str(tmp_path / "val" / "a" / "broken.jpg") in data.skipped_files()
  make = data.make_device_iterator if pipeline == "device" else data.make_pretrain_iterator
  batches = [np.asarray(next(it)["image"]) for it in [make(cfg, seed=0)] for _ in range(2)]
  assert all(b.shape == (4, 16, 16, 3) for b in batches)
  data.clear_cache()
  cfg.corrupt_images = "error"
  with pytest.raises(data.DataError, match=r"Unreadable image .*broken.jpg.*corrupt_images=skip"):
    data.load_labelled("image_folder", "val", cfg)


def test_device_path_decodes_the_same_pictures_as_tfdata(tmp_path):
  """Square images at the stored size: PIL (device path) and TensorFlow (tf.data path) agree up to JPEG decoders."""
  write_image_folder(tmp_path, classes=("a", "b"), per_class=2, size=(24, 24))
  by_path = {
    p: data.load_labelled("image_folder", "train", _cfg(tmp_path, pipeline=p, image_size=24))
    for p in ("tfdata", "device")
  }
  diff = np.abs(by_path["tfdata"][0].astype(int) - by_path["device"][0].astype(int))
  assert diff.mean() < 2 and diff.max() <= 12
  np.testing.assert_array_equal(by_path["tfdata"][1], by_path["device"][1])


@pytest.mark.parametrize("pipeline", ["tfdata", "device"])
def test_mixed_with_digits_and_resumed_exactly(tmp_path, pipeline):
  write_image_folder(tmp_path, classes=("a", "b"), per_class=5)
  cfg = _cfg(
    tmp_path, pipeline=pipeline, datasets=("digits:0.5", "image_folder@train:0.5"), image_size=16, batch_size=8
  )
  make = data.make_device_iterator if pipeline == "device" else data.make_pretrain_iterator
  it = make(cfg, seed=3)
  batches = [np.asarray(next(it)["image"]) for _ in range(3)]
  assert all(b.shape == (8, 16, 16, 3) and b.dtype == np.uint8 for b in batches)
  np.testing.assert_array_equal(np.asarray(next(make(cfg, seed=3, start_step=2))["image"]), batches[2])


def test_imagenet100_is_an_image_folder_with_the_packaged_list():
  assert folders.IMAGENET100_CLASSES_FILE.parent.name == "data"  # inside the package, not the checkout
  spec = folders.folder_spec("imagenet100", data.default_data_config())
  assert spec.classes == folders.imagenet100_classes() and len(spec.classes) == 100


@pytest.mark.slow
def test_ten_class_folder_trains_resumes_and_evaluates_with_the_readme_commands(tmp_path):
  """docs/data.md "Your own images": launch/main.py on a 10-class JPEG folder without val/ (held out), the same
  command resumed with more steps, then launch/evaluate.py (k-NN) on the held-out val split."""
  classes = tuple(f"n{9000000 + i:08d}" for i in range(10))  # WordNet-style names outside ImageNet-100
  write_image_folder(
    tmp_path / "images", classes=classes, per_class=6, splits=("train",), size=(36, 44), corrupt=("train",)
  )
  workdir = str(tmp_path / "run")
  flags = [
    f"--config={os.path.join(ROOT, 'configs', 'smoke.py')}:dataset=image_folder",
    f"--config.data.image_folder.dir={tmp_path / 'images'}",
    "--config.data.image_folder.val_fraction=0.2",
    "--config.ckpt_every_steps=2",
    *TINY_MODEL,
    *QUIET,
  ]
  env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2")
  main = [sys.executable, os.path.join(ROOT, "launch", "main.py"), f"--workdir={workdir}", *flags]
  logs = []
  for steps in (2, 4):
    proc = subprocess.run(
      [*main, f"--config.total_steps={steps}"], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    logs.append(proc.stderr)
  assert "resumed from" in logs[1] and "step 4/4" in logs[1]
  # 6 images per class and broken.jpg in the first: round(0.2 * n) of each class held out.
  assert "image_folder at" in logs[0] and "10 classes" in logs[0] and "train 51, val 10, test -" in logs[0]
  assert "Skipped unreadable image" in logs[0] and "broken.jpg" in logs[0]  # among the first 32 drawn (seed 0)
  evaluate = [sys.executable, os.path.join(ROOT, "launch", "evaluate.py"), f"--workdir={workdir}", "--eval_types=knn"]
  proc = subprocess.run([*evaluate, "--feature_kinds=avgpool"], env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(os.path.join(workdir, "evaluation", "results.json")) as f:
    results = json.load(f)
  assert results["num_classes"] == 10 and results["dataset"] == "image_folder", results
  # Another folder (3 classes, val/ present) for the same encoder: --data_dir overrides the run's folder.
  write_image_folder(tmp_path / "other", classes=("a", "b", "c"), per_class=4, size=(32, 32))
  proc = subprocess.run(
    [*evaluate, "--random_init", "--feature_kinds=avgpool", f"--data_dir={tmp_path / 'other'}"],
    env=env,
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(os.path.join(workdir, "evaluation", "results_random_init.json")) as f:
    assert json.load(f)["num_classes"] == 3
