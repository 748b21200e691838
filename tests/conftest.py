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
# Launched runs in the background. Tests whose point is the application as a user runs it
# (launch/main.py in a process of its own) name a fixture from tests/_smoke.BACKGROUND; as soon as
# collection shows a test needs one, its runs start, one at a time, on a worker thread. They compile
# on the second core while in-process tests (single-threaded XLA compiles) use the first.
# ---------------------------------------------------------------------------------------------
import json  # noqa: E402
import queue  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import pytest  # noqa: E402

from tests import _smoke  # noqa: E402

SUBPROCESS_ENV = dict(os.environ, PYTHONUNBUFFERED="1", MPLBACKEND="Agg")


class _Launcher:
  """Runs queued launch/main.py jobs one after another; `result(name)` waits for one."""

  def __init__(self):
    self.dir = tempfile.mkdtemp(prefix="hjepa_runs_")
    self.jobs, self.done, self.proc, self.seconds = queue.Queue(), {}, None, {}
    self.stopped = False
    threading.Thread(target=self._work, daemon=True).start()

  def workdir(self, name):
    return os.path.join(self.dir, name)

  def submit(self, name, flags, devices=None, options=None):
    self.done[name] = threading.Event()
    self.jobs.put((name, flags, devices, options or {}))

  def _work(self):
    while not self.stopped:
      name, flags, devices, options = self.jobs.get()
      env = (
        _smoke.with_xla_flag(SUBPROCESS_ENV, f"--xla_force_host_platform_device_count={devices}")
        if devices
        else (SUBPROCESS_ENV)
      )
      env = dict(env, **options.get("env", {}))
      workdir = self.workdir(options.get("workdir", name))
      cmd = [sys.executable, *_smoke.command(flags, workdir)]
      # A session of its own: close() ends the job with the processes it started (launch/benchmark.py's workers).
      self.proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
      )
      start = time.perf_counter()
      out, _ = self.proc.communicate()
      self.seconds[name] = time.perf_counter() - start
      self.done[name].output, self.done[name].returncode = out, self.proc.returncode
      self.done[name].workdir = workdir
      self.done[name].set()

  def result(self, name, timeout=900):
    """(returncode, output, workdir) of a finished job."""
    assert self.done[name].wait(timeout), f"background run {name} did not finish in {timeout} s"
    return self.done[name].returncode, self.done[name].output, self.done[name].workdir

  def close(self):
    self.stopped = True
    if self.proc is not None and self.proc.poll() is None:
      try:
        os.killpg(self.proc.pid, signal.SIGKILL)
      except ProcessLookupError:  # ended meanwhile
        pass
    shutil.rmtree(self.dir, ignore_errors=True)


_launcher = []


def pytest_collection_modifyitems(session, config, items):
  del session, config
  items.sort(key=lambda item: _smoke.run_order(item.fixturenames))  # stable: module order kept within a rank
  used = {name for item in items for name in item.fixturenames if name in _smoke.BACKGROUND}
  if used and not _launcher:
    _launcher.append(_Launcher())
    for fixture in sorted(used, key=list(_smoke.BACKGROUND).index):  # the order of BACKGROUND
      for job in _smoke.BACKGROUND[fixture]:
        _launcher[0].submit(*job)


def pytest_terminal_summary(terminalreporter):
  """The background jobs' times: their sum is the second core's load, to keep below the in-process tests' time."""
  if _launcher and _launcher[0].seconds:
    jobs = _launcher[0].seconds
    terminalreporter.write_line(
      f"background jobs, {sum(jobs.values()):.0f} s in all: " + ", ".join(f"{n} {t:.0f} s" for n, t in jobs.items())
    )


def pytest_sessionfinish(session, exitstatus):
  del session, exitstatus
  if _launcher:
    _launcher[0].close()


def _finished(job):
  code, out, workdir = _launcher[0].result(job)
  assert code == 0, out[-3000:]
  return workdir


def _facts(job, name):
  """(the JSON a finished job wrote as WORKDIR/NAME, WORKDIR): what a tests/_*_job.py script found, to assert on."""
  workdir = _finished(job)
  with open(os.path.join(workdir, name)) as f:
    return json.load(f), workdir


@pytest.fixture(scope="session")
def smoke_run():
  """WORKDIR of the shared smoke run (tests/_smoke.SMOKE_FLAGS), finished. Read it; copy_run() before writing."""
  return _finished("smoke")


@pytest.fixture(scope="session")
def evaluated_smoke_run():
  """(WORKDIR, {"trained" | "random_init": (returncode, output)}): a copy of the smoke run after launch/evaluate.py's
  two evaluations (tests/_smoke.BACKGROUND["evaluated_smoke_run"]), finished."""
  results = {
    name: _launcher[0].result(job)[:2] for name, job in (("trained", "evaluated"), ("random_init", "evaluated_init"))
  }
  return os.path.join(_launcher[0].workdir("evaluated"), "run"), results


@pytest.fixture(scope="session")
def visualized_smoke_run():
  """(returncode, output, WORKDIR): a copy of the smoke run after launch/visualize.py, finished."""
  code, out, workdir = _launcher[0].result("visualized")
  return code, out, os.path.join(workdir, "run")


@pytest.fixture(scope="session")
def device_runs():
  """{1: WORKDIR, 4: WORKDIR}: the same two steps on one and on four (forced) CPU devices."""
  return {devices: _finished(f"devices_{devices}") for devices in (1, 4)}


@pytest.fixture(scope="session")
def benchmark_runs():
  """{job name: (returncode, output, OUT)} of tests/_smoke.BACKGROUND["benchmark_runs"], finished."""
  return {job[0]: _launcher[0].result(job[0]) for job in _smoke.BACKGROUND["benchmark_runs"]}


@pytest.fixture(scope="session")
def tf_free_runs():
  """{job: (returncode, output, WORKDIR)} of tests/_smoke.BACKGROUND["tf_free_runs"] (TensorFlow hidden), finished.
  tf_free and tf_free_resumed share one WORKDIR."""
  return {job[0]: _launcher[0].result(job[0]) for job in _smoke.BACKGROUND["tf_free_runs"]}


@pytest.fixture(scope="session")
def levels_job():
  """WORKDIR/levels.json of tests/_levels_job.py (the designs' updates on two forced CPU devices), finished."""
  return _facts("levels", "levels.json")[0]


@pytest.fixture(scope="session")
def aggressive_run():
  """WORKDIR/facts.json of tests/_aggressive_job.py (configs/aggressive.py, every feature on), finished."""
  return _facts("aggressive", "facts.json")[0]


@pytest.fixture(scope="session")
def sigint_run():
  """(WORKDIR/sigint.json, WORKDIR/run) of tests/_sigint_job.py (a run stopped by SIGINT, then resumed), finished."""
  facts, workdir = _facts("sigint", "sigint.json")
  return facts, os.path.join(workdir, "run")


@pytest.fixture(scope="session")
def resume_reference():
  """WORKDIR of an uninterrupted run of tests/_smoke.RESUME_FLAGS."""
  return _finished("resume_reference")
