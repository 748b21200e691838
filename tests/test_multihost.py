"""Several hosts on JAX's own runtime: two launch/main.py processes on localhost (2 forced CPU devices each)
train as one process with 4 devices does, and a checkpoint of either layout resumes in the other."""

import os
import shutil
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest
from absl import flags

from hjepa_jax import checkpoint, distributed
from hjepa_jax.config import ConfigError
from tests._smoke import DEVICE_FLAGS, command, with_xla_flag

ENV = dict(os.environ, PYTHONUNBUFFERED="1")
RESUMED = "--config.total_steps=3"  # one step more than DEVICE_FLAGS' 2


def _settings(argv, environ=None):
  values = flags.FlagValues()
  distributed.define_flags(values)
  values(["prog", *argv])
  return distributed.settings(values, environ or {})


def test_settings_from_flags_or_env():
  assert _settings([]) == (None, None, None)  # one process: nothing to initialise
  env = {"JAX_COORDINATOR_ADDRESS": "h:1234", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "1"}
  assert _settings([], env) == ("h:1234", 2, 1)
  assert _settings(["--process_id=0"], env) == ("h:1234", 2, 0)  # a flag wins over its variable
  for argv, environ, named in (
    (["--num_processes=2", "--process_id=0"], {}, "--coordinator_address"),
    (["--num_processes=2", "--coordinator_address=h:1"], {}, "--process_id"),
    (["--num_processes=2", "--coordinator_address=h:1", "--process_id=2"], {}, "--process_id=2"),
    (["--num_processes=2", "--coordinator_address=h", "--process_id=0"], {}, "HOST:PORT"),
    ([], {"JAX_NUM_PROCESSES": "two"}, "$JAX_NUM_PROCESSES"),
    (["--process_id=1"], {}, "--num_processes"),
  ):
    with pytest.raises(ConfigError, match=named.replace("$", r"\$")):
      _settings(argv, environ)


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _two_processes(workdir, *extra):
  """launch/main.py DEVICE_FLAGS as processes 0 and 1 of one run (2 CPU devices each); both must succeed."""
  env = with_xla_flag(ENV, "--xla_force_host_platform_device_count=2")
  where = [f"--coordinator_address=127.0.0.1:{_free_port()}", "--num_processes=2"]
  procs = [
    subprocess.Popen(
      [sys.executable, *command([*DEVICE_FLAGS, *extra, *where, f"--process_id={i}"], workdir)],
      env=env,
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
    )
    for i in range(2)
  ]
  outs = [p.communicate(timeout=600)[0] for p in procs]
  for p, out in zip(procs, outs):
    assert p.returncode == 0, out[-3000:]
  return outs


def _one_process(workdir, *extra):
  env = with_xla_flag(ENV, "--xla_force_host_platform_device_count=4")
  proc = subprocess.run(
    [sys.executable, *command([*DEVICE_FLAGS, *extra], workdir)], env=env, capture_output=True, text=True, timeout=600
  )
  assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]


def _log(workdir):
  return open(os.path.join(workdir, "logs", "training.log")).read()


def _losses(workdir):
  return [float(l.split("| loss ")[1].split()[0]) for l in _log(workdir).splitlines() if "| loss " in l]


def _assert_same_state(a, b):
  (step_a, a), (step_b, b) = checkpoint.restore_for_eval(a), checkpoint.restore_for_eval(b)
  assert step_a == step_b
  jax.tree_util.tree_map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6), a, b)


@pytest.mark.slow
def test_two_processes_match_one_and_checkpoints_cross_layouts(tmp_path, device_runs):
  """2 processes x 2 devices == 1 process x 4 devices (tests/_smoke.DEVICE_FLAGS, the device_runs reference):
  the same logged losses and final state. Then each layout's step-2 checkpoint resumes in the other for one more
  step, and the two step-3 states agree."""
  multi = str(tmp_path / "multi")
  _two_processes(multi)
  log = _log(multi)
  assert "x 4 devices, 2 process(es)" in log
  assert log.count("training finished at step 2") == 1  # one log file, written by process 0 only
  single = device_runs[4]
  assert _losses(multi) == _losses(single) and _losses(multi), (_losses(multi), _losses(single))
  _assert_same_state(multi, single)
  assert sorted(os.listdir(os.path.join(multi, "checkpoints"))) == ["2"]

  to_one = shutil.copytree(multi, str(tmp_path / "to_one"))  # saved by 2 processes, resumed by 1
  _one_process(to_one, RESUMED)
  to_two = shutil.copytree(single, str(tmp_path / "to_two"))  # saved by 1 process, resumed by 2
  _two_processes(to_two, RESUMED)
  for workdir in (to_one, to_two):
    assert "at step 2" in _log(workdir)  # "resumed from .../checkpoints/2 at step 2"
  _assert_same_state(to_one, to_two)
