"""profile_steps: a jax.profiler trace of N steps right after the compile, in WORKDIR/profile; 0 (the default)
writes nothing; a negative value fails at start-up naming the key."""

import glob
import os

import pytest

from hjepa_jax import periodic, train
from hjepa_jax.config import ConfigError
from tests._core import tiny_config


def test_profile_steps_writes_a_trace_after_the_compile(tmp_path, caplog):
  workdir = str(tmp_path / "on")
  train.train_and_evaluate(tiny_config(total_steps=5, profile_steps=2), workdir)
  traces = glob.glob(os.path.join(workdir, periodic.PROFILE_DIR, "**", "*.xplane.pb"), recursive=True)
  assert traces and all(os.path.getsize(t) > 0 for t in traces), os.listdir(workdir)
  assert "profile of steps 2-3" in caplog.text  # the first step (the compile) stays out of it


def test_profile_steps_off_writes_nothing(smoke_run):
  """The shared smoke run (the default, profile_steps=0) has no profile folder."""
  assert os.listdir(smoke_run) and not os.path.exists(os.path.join(smoke_run, periodic.PROFILE_DIR))


def test_negative_profile_steps_fails_naming_the_key(tmp_path):
  workdir = str(tmp_path / "bad")
  with pytest.raises(ConfigError, match="'profile_steps'.*>= 0"):
    train.train_and_evaluate(tiny_config(profile_steps=-1), workdir)
  assert not os.path.exists(workdir)  # before anything is written
