"""Data config: every key has a default, is read by the code, and validates."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from ml_collections import config_dict

from hjepa_jax.data import DataError, default_data_config, num_classes
from hjepa_jax.data.validate import DATASET_NAMES, parse_datasets

DATA_DIR = Path(__file__).resolve().parents[1] / "hjepa_jax" / "data"


def test_every_key_is_read_by_the_data_package():
  code = "\n".join(p.read_text() for p in DATA_DIR.glob("*.py") if p.name != "config.py")
  unread = [k for k in default_data_config().keys() if not re.search(rf"\.{k}\b", code)]
  assert not unread, f"config keys never read: {unread}"


def test_none_defaults_are_overridable_placeholders():
  cfg = default_data_config()
  for key in ("cifar10_dir", "imagenet100_dir", "tfds_data_dir", "max_stored_size", "eval_max_examples"):
    assert cfg[key] is None
    assert isinstance(cfg.get_ref(key), config_dict.FieldReference)
  cfg.cifar10_dir = "/some/where"  # a placeholder keeps its type and accepts a value
  with pytest.raises(TypeError):
    cfg.max_stored_size = "big"


def test_defaults_follow_ijepa():
  cfg = default_data_config()
  assert tuple(cfg.crop_scale) == (0.3, 1.0)
  assert cfg.crop_ratio == pytest.approx((3 / 4, 4 / 3))
  assert cfg.deit3_strength == 0.0 and cfg.download is False


def test_parse_datasets_normalises_weights_and_defaults_splits():
  specs = parse_datasets(("stl10:3", "cifar10_local@test:1", "cifar10@train[:10%]:4"))
  assert [(s.name, s.split) for s in specs] == [
    ("stl10", "unlabelled+train"),
    ("cifar10_local", "test"),
    ("cifar10", "train[:10%]"),
  ]
  assert [s.weight for s in specs] == pytest.approx([0.375, 0.125, 0.5])
  assert parse_datasets("digits")[0].weight == 1.0
  from_dicts = parse_datasets(({"name": "stl10", "weight": 3, "split": "train"}, {"name": "digits"}))
  assert [(s.name, s.split, s.weight) for s in from_dicts] == [("stl10", "train", 0.75), ("digits", "train", 0.25)]


def test_config_freezes_and_datasets_override_from_the_command_line():
  from ml_collections import FrozenConfigDict
  from ml_collections.config_flags import tuple_parser

  frozen = FrozenConfigDict(default_data_config())  # dicts inside tuples would make this fail
  assert parse_datasets(frozen.datasets)[0].name == "cifar10_local"
  # What --config.data.datasets=... turns into (config_flags parses tuple fields this way).
  parsed = tuple_parser.TupleParser().parse("('stl10:0.8', 'digits@test:0.2')")
  assert [(s.name, s.split) for s in parse_datasets(parsed)] == [("stl10", "unlabelled+train"), ("digits", "test")]
  assert parse_datasets(tuple_parser.TupleParser().parse("digits"))[0].name == "digits"


@pytest.mark.parametrize(
  "datasets, message",
  [
    (("mnist",), "Unknown dataset 'mnist'"),
    (("digits:0",), "weight"),
    (("digits:-1.0",), "weight"),
    (("digits:nan",), "weight"),
    (("digits:abc",), "must be a number"),
    (({"name": "digits", "wieght": 1},), "unknown keys"),
    ((), "empty"),
    (("digits", "digits"), "twice"),
  ],
)
def test_parse_datasets_rejects_bad_entries(datasets, message):
  with pytest.raises(DataError, match=message):
    parse_datasets(datasets)


def test_num_classes():
  assert {n: num_classes(n) for n in DATASET_NAMES if n != "image_folder"} == {
    "cifar10": 10,
    "cifar10_local": 10,
    "cifar100_local": 100,
    "stl10": 10,
    "stl10_local": 10,
    "imagenet100": 100,
    "imagenet100_tfds": 100,
    "digits": 10,
    "fashion_mnist_local": 10,
  }
  with pytest.raises(DataError, match="depends on its folder"):  # tests/test_data_folder.py counts them
    num_classes("image_folder")
  with pytest.raises(DataError, match="Use one of"):
    num_classes("imagenet")


def test_importing_the_package_does_not_import_tensorflow():
  code = "import sys, hjepa_jax.data as d; d.default_data_config(); assert 'tensorflow' not in sys.modules"
  subprocess.run([sys.executable, "-c", code], check=True, cwd=DATA_DIR.parents[1])
