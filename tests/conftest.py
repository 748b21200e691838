"""Test-session settings: CPU only, fast XLA:CPU compiles, one persistent compilation cache (jax >= 0.10) for the
session and its subprocesses, and one shared smoke run.

CPU compiles dominate this suite's time. Launched runs (launch/main.py, launch/evaluate.py) compile
the same small programs again and again; with the cache they load them instead. The cache lives in
`.jax_test_cache/` at the repository root (git-ignored; cold in a fresh clone, warm on a rerun) or in
$HJEPA_TEST_JAX_CACHE. Entries are keyed by program, jax version and flags, so a stale hit is not possible.
"""

import importlib.metadata
import os

from tests._smoke import FAST_COMPILE_FLAG

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.environ.get("HJEPA_TEST_JAX_CACHE") or os.path.join(ROOT, ".jax_test_cache")

# Subprocesses inherit these; this process reads them when jax is first imported (below).
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# jax 0.5.0 (the jax-metal profile) is excluded: there an executable loaded from the CPU cache by a new
# process segfaults or computes NaN (seen on resuming a run here). Checked good on jax 0.10.x.
USE_CACHE = tuple(int(p) for p in importlib.metadata.version("jax").split(".")[:2]) >= (0, 10)
if USE_CACHE:
  os.environ["JAX_COMPILATION_CACHE_DIR"] = CACHE
  os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
# XLA:CPU's LLVM backend at -O0 compiles these small programs about twice as fast; the HLO (what the
# tests check) is the same, only machine-code optimisation is skipped. Tests that time or train for
# real (the slow ones) drop it for their runs: tests._smoke.full_speed_env().
os.environ["XLA_FLAGS"] = " ".join(filter(None, [os.environ.get("XLA_FLAGS", ""), FAST_COMPILE_FLAG]))

import jax  # noqa: E402  pylint: disable=g-import-not-at-top

if USE_CACHE:
  jax.config.update("jax_compilation_cache_dir", CACHE)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


# ---------------------------------------------------------------------------------------------
# One shared smoke run (launch/main.py, as a user runs it) for the end-to-end tests of training,
# evaluation and the run tools. It starts in the background as soon as collection shows a test
# needs it, so it compiles on the second core while in-process tests run on the first.
# ---------------------------------------------------------------------------------------------
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

import pytest  # noqa: E402

from tests._smoke import SMOKE_FLAGS  # noqa: E402

SUBPROCESS_ENV = dict(os.environ, PYTHONUNBUFFERED="1", MPLBACKEND="Agg")
_smoke = {}


def pytest_collection_modifyitems(session, config, items):
  del session, config
  if any("smoke_run" in item.fixturenames for item in items) and not _smoke:
    _smoke["dir"] = tempfile.mkdtemp(prefix="hjepa_smoke_")
    _smoke["workdir"] = os.path.join(_smoke["dir"], "run")
    _smoke["proc"] = subprocess.Popen(
      [sys.executable, os.path.join(ROOT, "launch", "main.py"), f"--workdir={_smoke['workdir']}", *SMOKE_FLAGS],
      env=SUBPROCESS_ENV,
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
    )


def pytest_sessionfinish(session, exitstatus):
  del session, exitstatus
  proc = _smoke.get("proc")
  if proc is not None and proc.poll() is None:
    proc.kill()
    proc.communicate()
  if "dir" in _smoke:
    shutil.rmtree(_smoke["dir"], ignore_errors=True)


@pytest.fixture(scope="session")
def smoke_run():
  """WORKDIR of the shared smoke run (SMOKE_FLAGS), finished. Read it; copy it (copy_run) before writing."""
  proc = _smoke["proc"]
  if "output" not in _smoke:
    _smoke["output"], _ = proc.communicate(timeout=900)
  assert proc.returncode == 0, _smoke["output"][-3000:]
  return _smoke["workdir"]
