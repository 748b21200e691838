"""Every bad command line of launch/main.py fails at start-up, in seconds, with one line naming the key.

Most cases run in-process through what the launcher runs (`cli.parse_flags` on a fresh FlagValues with
main.py's flags, then `cli.check_start`): exit status non-zero, the full key in the message, no traceback,
nothing lowered or compiled. A few run launch/main.py itself to prove the end-to-end path.
"""

import os
import subprocess
import sys
import tempfile
import threading
import time

import jax
import pytest
from absl import flags

from hjepa_jax import cli, masks

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE = os.path.join(ROOT, "configs", "smoke.py")
CONFIG = f"--config={SMOKE}"

# (command-line arguments after --workdir, text the one-line message must contain: the full key or flag).
VALUES = [
  ("total_steps=0", "'total_steps'"),
  ("total_steps=-5", "'total_steps'"),
  ("total_epochs=0", "'total_epochs'"),
  ("total_epochs=-1", "'total_epochs'"),
  ("optim.clip_norm=-1", "'optim.clip_norm'"),
  ("optim.b1=2.0", "'optim.b1'"),
  ("optim.b2=1.0", "'optim.b2'"),
  ("optim.eps=0", "'optim.eps'"),
  ("optim.weight_decay=-1", "'optim.weight_decay'"),
  ("optim.final_weight_decay=-0.1", "'optim.final_weight_decay'"),
  ("optim.final_lr=10", "'optim.final_lr'"),
  ("optim.start_lr=1", "'optim.start_lr'"),
  ("optim.lr=0", "'optim.lr'"),
  ("optim.lr=nan", "'optim.lr'"),
  ("optim.lr=inf", "'optim.lr'"),
  ("optim.warmup_steps=-1", "'optim.warmup_steps'"),
  ("optim.warmup_epochs=-1", "'optim.warmup_epochs'"),
  ("optim.grad_accum_steps=0", "'optim.grad_accum_steps'"),
  ("model.depth=0", "'model.depth'"),
  ("model.width=0", "'model.width'"),
  ("model.num_heads=3", "'model.num_heads'"),
  ("model.patch_size=0", "'model.patch_size'"),
  ("model.patch_size=5", "'data.image_size'"),  # the patch must divide the image
  ("model.mlp_ratio=0", "'model.mlp_ratio'"),
  ("model.remat=everything", "'model.remat'"),
  ("model.dtype=float16", "'model.dtype'"),
  ("model.variant=X/16", "'model.variant'"),
  ("model.predictor.depth=0", "'model.predictor.depth'"),
  ("eval.batch_size=0", "'eval.batch_size'"),
  ("eval.max_examples=0", "'eval.max_examples'"),
  ("eval.knn_ks=(0,)", "'eval.knn_ks'"),
  ("eval.max_examples=10", "'eval.knn_ks'"),  # k=20 needs 20
  ("eval.every_steps=-1", "'eval.every_steps'"),
  ("eval.every_steps=0", "'eval.every_steps'"),  # best_metric needs evaluations
  ("keep_checkpoints=-1", "'keep_checkpoints'"),
  ("keep_checkpoints=0", "'keep_checkpoints'"),
  ("log_every_steps=0", "'log_every_steps'"),
  ("histogram_every_steps=-1", "'histogram_every_steps'"),
  ("eval.attention_images=-1", "'eval.attention_images'"),
  ("eval.attention_images=65", "'eval.attention_images'"),
  ("report.criteria=strict", "'report.criteria'"),
  ("ckpt_every_steps=0", "'ckpt_every_steps'"),
  ("seed=-1", "'seed'"),
  ("best_mode=median", "'best_mode'"),
  ("ema.start=1.5", "'ema.start'"),
  ("ema.end=0.5", "'ema.end'"),
  ("mask.num_targets=0", "'mask.num_targets'"),
  ("mask.min_context=0", "'mask.min_context'"),
  ("mask.target_scale=(0.2, 0.1)", "'mask.target_scale'"),
  ("mask.context_scale=(0.5, 1.5)", "'mask.context_scale'"),
  ("mask.capacity=max", "'mask.capacity'"),
  ("loss.num_hierarchies=0", "'loss.num_hierarchies'"),
  ("loss.hierarchy_weights=(1.0,)", "'loss.hierarchy_weights'"),
  ("loss.hierarchy_weights=(-1.0, 0.5)", "'loss.hierarchy_weights'"),
  ("loss.type=l2", "'loss.type'"),
  ("loss.contrastive.temperature=0", "'loss.contrastive.temperature'"),
  ("data.batch_size=0", "'data.batch_size'"),
  ("data.image_size=4", "'data.image_size'"),
  ("data.crop_scale=(0.0, 1.0)", "'data.crop_scale'"),
  ("data.pipeline=gpu", "'data.pipeline'"),
  ("data.datasets=('imagenet',)", "'data.datasets'"),
  ("data.eval_dataset=mnist", "'data.eval_dataset'"),
  ("data.eval_crop_fraction=1.5", "'data.eval_crop_fraction'"),
  ("data.multicrop.num_local=-1", "'data.multicrop.num_local'"),
]

CONFIG_FILES = {  # name -> source of a broken config file
  "raises.py": "raise RuntimeError('boom')\n",
  "syntax.py": "def get_config(:\n",
  "noget.py": "x = 1\n",
  "none.py": "def get_config(arg=None):\n  return None\n",
}

COMMAND_LINES = [
  ([f"{CONFIG}:contrastive=treu"], "'contrastive'"),
  ([f"{CONFIG}:steps=ten"], "'steps'"),
  ([f"{CONFIG}:datset=cifar10_local"], "'datset'"),
  (["--config=configs/nope.py"], "configs/nope.py"),
  (["--config={tmp}/raises.py"], "RuntimeError: boom (line 1)"),
  (["--config={tmp}/syntax.py"], "syntax error in"),
  (["--config={tmp}/noget.py"], "no get_config"),
  (["--config={tmp}/none.py"], "get_config() returned NoneType"),
  ([CONFIG, "--config.optim.warmup_step=3"], "'optim.warmup_step' (did you mean 'optim.warmup_steps'?)"),
  ([CONFIG, "--config.model.predictor.widht=8"], "'model.predictor.widht' (did you mean 'model.predictor.width'?)"),
  ([CONFIG, "--config.modle.depth=2"], "'modle.depth'"),
  ([CONFIG, "--config.optim.lr=abc"], "--config.optim.lr"),
  ([CONFIG, "--config.model.rope=maybe"], "--config.model.rope"),
  ([CONFIG, "--config.total_steps=1.5"], "--config.total_steps"),
  ([CONFIG, "--confg.optim.lr=1"], "confg.optim.lr"),
  ([], "--config"),
  ([CONFIG, "--workdir={tmp}/afile"], "is a file, not a directory"),
  ([CONFIG, "--workdir={tmp}/afile/run"], "is a file, not a directory"),
]

_LOWERED = []  # jax monitoring events of lowering or compiling a program


def _on_event(event, *args, **kwargs):
  if event.startswith(("/jax/core/compile/jaxpr_to_mlir", "/jax/core/compile/backend_compile")):
    _LOWERED.append(event)


jax.monitoring.register_event_duration_secs_listener(_on_event)


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
  d = tmp_path_factory.mktemp("bad_inputs")
  for name, source in CONFIG_FILES.items():
    (d / name).write_text(source)
  (d / "afile").write_text("")
  return str(d)


def _start(argv):
  """What launch/main.py does before training, on a fresh FlagValues: the SystemExit's message."""
  sys.modules.pop("config_config", None)  # ml_collections loads every --config file into this one module
  argv, fv = ["main.py", *argv], flags.FlagValues()
  cli.define_config(flag_values=fv, argv=argv)
  flags.DEFINE_string("workdir", None, "run directory", flag_values=fv)
  flags.mark_flags_as_required(["config", "workdir"], flag_values=fv)
  with pytest.raises(SystemExit) as e:
    cli.parse_flags(argv, fv)
    cli.check_start(fv.config, fv.workdir)
  return e.value.code


def _check_refused(argv, fragment, capfd, tmp):
  argv = [a.format(tmp=tmp) for a in argv]
  if not any(a.startswith("--workdir") for a in argv):
    argv.append(f"--workdir={tmp}/run")
  del _LOWERED[:]
  masks._untrimmed_sizes.cache_clear()  # so a check after the mask draw would show up as a lowering
  start = time.perf_counter()
  message = _start(argv)
  seconds = time.perf_counter() - start
  out, err = capfd.readouterr()
  assert isinstance(message, str) and message.startswith("error: "), message  # exit status 1
  assert "\n" not in message and fragment.format(tmp=tmp) in message, message
  assert "Traceback" not in out + err + message, out + err
  assert not _LOWERED, f"{argv}: lowered/compiled {_LOWERED} before refusing"
  assert not os.path.exists(os.path.join(tmp, "run")), "the run directory was created before the check"
  assert seconds < 10, f"{argv}: {seconds:.1f} s"


@pytest.mark.parametrize("override, key", VALUES)
def test_a_bad_value_is_refused_naming_the_key(override, key, capfd, tmp):
  _check_refused([CONFIG, "--config." + override], key, capfd, tmp)


@pytest.mark.parametrize("argv, fragment", COMMAND_LINES)
def test_a_bad_command_line_is_refused_in_one_line(argv, fragment, capfd, tmp):
  _check_refused(argv, fragment, capfd, tmp)


def test_the_smoke_command_line_passes(tmp):
  """The checks refuse only bad values: the smoke command line starts. Then the mask-capacity draw compiles,
  which the listener sees (so its silence in the cases above means something)."""
  sys.modules.pop("config_config", None)
  argv, fv = ["main.py", CONFIG, "--config.total_steps=3"], flags.FlagValues()
  cli.define_config(flag_values=fv, argv=argv)
  cli.parse_flags(argv, fv)
  del _LOWERED[:]
  masks._untrimmed_sizes.cache_clear()
  cli.check_start(fv.config, os.path.join(tmp, "ok"))
  assert fv.config.total_steps == 3 and _LOWERED


def test_a_library_bug_while_loading_the_config_keeps_its_traceback(tmp_path):
  """Only mistakes in the config file become one line: a bug in hjepa_jax code it calls propagates."""
  path = tmp_path / "bug.py"
  path.write_text(
    "from hjepa_jax.config import resolve_steps\n\ndef get_config(arg=None):\n  resolve_steps({}, 'total', 1)\n"
  )
  fv = flags.FlagValues()
  cli.define_config(flag_values=fv)
  with pytest.raises(KeyError, match="total_steps"):
    cli.parse_flags(["main.py", f"--config={path}"], fv)


@pytest.mark.parametrize(
  "argv, fragment",
  [
    ([f"{CONFIG}:contrastive=treu"], "'contrastive'"),
    ([CONFIG, "--config.optim.warmup_step=3"], "did you mean 'optim.warmup_steps'"),
    (["--config=configs/nope.py"], "configs/nope.py"),
    ([CONFIG, "--config.total_steps=0"], "'total_steps'"),
    ([CONFIG, "--workdir={tmp}/afile"], "is a file"),
  ],
)
def test_launch_main_refuses_in_seconds_without_a_traceback(argv, fragment, tmp):
  """The end-to-end path: launch/main.py itself, exit status 1, one message, no traceback, nothing made."""
  argv = [a.format(tmp=tmp) for a in argv]
  workdir = os.path.join(tmp, "e2e")
  env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2", HJEPA_HUGE_PAGES="0")
  code, out, cpu_s = _run_with_cpu_time(
    [sys.executable, os.path.join(ROOT, "launch", "main.py"), f"--workdir={workdir}", *argv], env
  )
  assert code == 1 and fragment.format(tmp=tmp) in out and "Traceback" not in out, out
  assert [line for line in out.splitlines() if line.startswith("error: ")] == [out.strip().splitlines()[-1]], out
  assert not os.path.exists(workdir)
  # Imports and the check only: compiling the smoke step alone costs more. CPU seconds, not wall seconds, so a
  # machine loaded by other work (CI beside a training run) cannot fail it.
  assert cpu_s < 30, f"{cpu_s:.1f} CPU s"


def _run_with_cpu_time(cmd, env, timeout_s=300):
  """(exit code, stdout + stderr, the child's CPU seconds from wait4); killed after timeout_s of wall time."""
  with tempfile.TemporaryFile() as out:
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    timer = threading.Timer(timeout_s, proc.kill)
    timer.start()
    try:
      _, status, usage = os.wait4(proc.pid, 0)
    finally:
      timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
    out.seek(0)
    return proc.returncode, out.read().decode(errors="replace"), usage.ru_utime + usage.ru_stime
