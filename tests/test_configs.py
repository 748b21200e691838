"""Config files: every key read, validation naming the key, overrides that change what they say."""

import glob
import os

import jax
import pytest

from hjepa_jax import config as config_lib
from hjepa_jax import experiment
from hjepa_jax.config import ConfigError, parent_and_leaf
from hjepa_jax.data import DataError
from hjepa_jax.platform import Platform

from tests import _data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "*.py")))
CPU = Platform(backend="cpu", device_kind="cpu", num_devices=1, process_count=1)


load = config_lib.load_config


def offline(cfg):
  """Point a config at the bundled digits set (values change, the set of keys does not)."""
  cfg.data.datasets = ("digits",)
  cfg.data.eval_dataset = "digits"
  cfg.data.eval_split_test = "test"
  return cfg


def test_all_config_files_are_found():
  assert {os.path.basename(p) for p in CONFIGS} >= {"smoke.py", "conservative.py", "aggressive.py", "overnight_safe.py"}


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_every_key_of_every_config_is_read(path):
  cfg = offline(load(path))
  _, reader = experiment.prepare(cfg, CPU)
  assert reader.unread() == []
  assert {p for p, _ in config_lib._leaves(cfg)} == {p for p, _ in config_lib._leaves(config_lib.base_config())}


def test_an_unread_key_fails_at_start_up(monkeypatch):
  """The seed's worst bug: a switch in the config that no code looks at."""

  def schema_with_dead_switch():
    c = base()
    c.model.use_flash_attention = True
    return c

  base = config_lib.base_config
  monkeypatch.setattr(config_lib, "base_config", schema_with_dead_switch)
  cfg = offline(load(os.path.join(ROOT, "configs", "smoke.py")))
  with cfg.unlocked():
    cfg.model.use_flash_attention = True
  with pytest.raises(ConfigError, match="model.use_flash_attention"):
    experiment.prepare(cfg, CPU)


def test_a_misspelt_key_fails_with_a_suggestion():
  cfg = offline(load(CONFIGS[0]))
  with cfg.unlocked():
    cfg.model.layerscal = True
  with pytest.raises(ConfigError, match=r"unknown config key 'model.layerscal' \(did you mean 'model.layerscale'"):
    experiment.prepare(cfg, CPU)


@pytest.mark.parametrize(
  "key, value, fragment",
  [
    ("optim.lr", -1.0, "optim.lr"),
    ("mask.target_scale", (0.2, 1.5), "target_scale"),
    ("loss.hierarchy_weights", (1.0, 0.5, 0.25), "loss.hierarchy_weights"),
    ("data.crop_scale", (0.0, 1.0), "data.crop_scale"),
    ("model.dtype", "float64", "dtype"),
    ("optim.grad_accum_steps", 0, "grad_accum_steps"),
    ("model.layerscale_init", "big", "model.layerscale_init"),
    ("loss.sigreg.weight", -0.1, "loss.sigreg.weight"),
    ("loss.sigreg.num_points", 2, "loss.sigreg.num_points"),
  ],
)
def test_bad_values_fail_naming_the_key(key, value, fragment):
  cfg = offline(load(os.path.join(ROOT, "configs", "smoke.py")))
  node, leaf = parent_and_leaf(cfg, key)
  with cfg.ignore_type():
    node[leaf] = value
  with pytest.raises((ConfigError, ValueError, DataError), match=fragment):
    experiment.prepare(cfg, CPU)


def test_batch_not_divisible_by_devices_fails():
  cfg = offline(load(os.path.join(ROOT, "configs", "smoke.py")))
  cfg.data.batch_size = 30
  four = Platform(backend="cpu", device_kind="cpu", num_devices=4, process_count=1)
  with pytest.raises(ConfigError, match="data.batch_size.*4 devices"):
    experiment.prepare(cfg, four)


def test_batch_size_override_rescales_every_schedule():
  cfg = offline(load(os.path.join(ROOT, "configs", "conservative.py")))
  a, _ = experiment.prepare(cfg, CPU)
  cfg.data.batch_size = 16
  b, _ = experiment.prepare(cfg, CPU)
  assert b.steps_per_epoch == 2 * a.steps_per_epoch or abs(b.steps_per_epoch - 2 * a.steps_per_epoch) <= 1
  assert b.total_steps == pytest.approx(2 * a.total_steps, abs=60)
  assert b.step_spec.optim.warmup_steps == pytest.approx(2 * a.step_spec.optim.warmup_steps, abs=6)
  assert b.ckpt_every == pytest.approx(2 * a.ckpt_every, abs=1)
  assert b.eval.every == pytest.approx(2 * a.eval.every, abs=5)
  cfg.total_steps = 123  # *_steps wins over *_epochs
  assert experiment.prepare(cfg, CPU)[0].total_steps == 123


def test_grad_accumulation_counts_in_the_epoch():
  cfg = offline(load(os.path.join(ROOT, "configs", "aggressive.py")))
  exp, _ = experiment.prepare(cfg, CPU)
  assert exp.global_batch == 64 and exp.micro_batch == 16 and exp.step_spec.grad_accum_steps == 4
  assert exp.steps_per_epoch == 1433 // 64


def test_model_override_changes_param_count():
  def count(arg):
    cfg = offline(load(os.path.join(ROOT, "configs", "conservative.py"), arg))
    exp, _ = experiment.prepare(cfg, CPU)
    shapes = jax.eval_shape(exp.step_spec.model.init, jax.random.PRNGKey(0))
    return sum(x.size for x in jax.tree_util.tree_leaves(shapes["encoder"]))

  small, base = count("model=Ti/16"), count(None)
  assert 5e6 < small < 6e6 and 21e6 < base < 23e6  # ViT-Ti/16 ~5.5M, ViT-S/16 ~21.7M


def test_aggressive_builds_its_phase3_features():
  exp, _ = experiment.prepare(offline(load(os.path.join(ROOT, "configs", "aggressive.py"))), CPU)
  spec = exp.step_spec
  assert spec.model.fpn is not None and spec.model.fpn.num_levels == 3 and spec.model.projector is not None
  assert spec.views.contrastive_weight == 0.1 and spec.grad_accum_steps == 4
  params = jax.eval_shape(spec.model.init, jax.random.PRNGKey(0))
  assert set(params) == {"encoder", "predictor", "fpn", "projector"}


@pytest.mark.parametrize(
  "key, value, match",
  [
    ("data.multicrop.num_local", 2, "only used by the view-level losses"),
    ("loss.vicreg.on_predictions", True, "has no effect while loss.vicreg.weight is 0"),
    ("model.fpn.fusion", "sum", "must be 'add' or 'concat'"),
    ("loss.contrastive.temperature", 0.0, "must be > 0"),
  ],
)
def test_view_and_fpn_switches_that_would_do_nothing_fail_by_name(key, value, match):
  cfg = offline(load(os.path.join(ROOT, "configs", "smoke.py")))
  node, leaf = parent_and_leaf(cfg, key)
  node[leaf] = value
  with pytest.raises(ConfigError, match=key.replace(".", r"\.") + ".*" + match):
    experiment.prepare(cfg, CPU)


def test_overnight_safe_is_conservative_with_remat_and_45_epochs():
  safe = load(os.path.join(ROOT, "configs", "overnight_safe.py"), "local")
  assert safe.total_epochs == 45.0 and safe.model.remat == "nothing_saveable"
  assert tuple(safe.loss.hierarchy_weights) == (1.0, 0.7, 0.5) and safe.data.datasets == ("cifar10_local",)


def test_config_argument_parsing():
  assert config_lib.parse_arg("model=Ti/16,local", model="S/16", local=False) == {"model": "Ti/16", "local": True}
  with pytest.raises(ConfigError, match="unknown config argument 'modle'"):
    config_lib.parse_arg("modle=Ti/16", model="S/16")


@pytest.mark.parametrize("arg", ["local=Ture", "local=yes", "local=1", "local=true"])
def test_config_argument_bools_are_strict(arg):
  with pytest.raises(ConfigError, match="'local' is a bool"):
    config_lib.parse_arg(arg, local=False)
  assert config_lib.parse_arg("local=False", local=True) == {"local": False}
  assert config_lib.parse_arg("local=True", local=False) == {"local": True}
  with pytest.raises(ConfigError, match="'steps' needs a int"):
    config_lib.parse_arg("steps=ten", steps=0)


@pytest.mark.parametrize("metric, mode", [("train/loss", "max"), ("eval/knn_top1_k20", "min")])
def test_best_mode_must_agree_with_the_metric(metric, mode):
  cfg = offline(load(os.path.join(ROOT, "configs", "smoke.py")))
  cfg.best_metric, cfg.best_mode = metric, mode
  with pytest.raises(ConfigError, match="'best_mode'.*must be '(min|max)'"):
    experiment.prepare(cfg, CPU)
  cfg.best_mode = "min" if mode == "max" else "max"
  experiment.prepare(cfg, CPU)


def test_a_bug_while_building_keeps_its_traceback(monkeypatch):
  """Only config problems become ConfigError; a TypeError from a bug propagates as itself."""

  def broken(*args, **kwargs):
    raise TypeError("a bug in the model code")

  monkeypatch.setattr(experiment, "build_model", broken)
  with pytest.raises(TypeError, match="a bug in the model code") as e:
    experiment.prepare(offline(load(os.path.join(ROOT, "configs", "smoke.py"))), CPU)
  assert not isinstance(e.value, ConfigError)
  assert any(tb.name == "broken" for tb in e.traceback)


@pytest.mark.parametrize("size", [64, 96])
def test_folder_config_reads_your_folder_on_the_8x8_grid_with_the_contrastive_term(tmp_path, size):
  """configs/folder.py: the recipe on your own folder, any multiple of 8 px on CIFAR-10's 8x8 grid."""
  _data.write_image_folder(tmp_path, per_class=8, size=(size + 10, size))
  cfg = load(os.path.join(ROOT, "configs", "folder.py"), f"cpu,size={size}")
  cfg.data.image_folder.dir = str(tmp_path)
  cfg.data.batch_size = 8
  exp, reader = experiment.prepare(cfg, CPU)
  assert reader.unread() == []
  assert exp.step_spec.masks.grid == (8, 8) and cfg.model.patch_size == size // 8
  assert exp.step_spec.views.contrastive_weight == 0.1 and cfg.data.datasets == ("image_folder",)
  jepa_alone = load(os.path.join(ROOT, "configs", "cifar10.py"), "cpu")
  assert cfg.model.to_dict() | {"patch_size": 4} == jepa_alone.model.to_dict()  # the model of configs/cifar10.py


@pytest.mark.parametrize("arg, match", [("size=60", "multiple of 8, got size=60"), ("sise=64", "unknown config")])
def test_folder_config_refuses_a_size_off_the_grid(arg, match):
  with pytest.raises(ConfigError, match=match):
    load(os.path.join(ROOT, "configs", "folder.py"), arg)


def test_folder_config_without_a_folder_says_which_flag_to_give():
  with pytest.raises(DataError, match=r"--config\.data\.image_folder\.dir=ROOT"):
    experiment.prepare(load(os.path.join(ROOT, "configs", "folder.py"), "cpu"), CPU)
