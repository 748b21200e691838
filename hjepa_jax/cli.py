"""The launchers' command line: a mistake on it ends the program with one line, `error: ...`, and status 1.

absl and ml_collections report most command-line mistakes as tracebacks: a misspelt `--config.x.y`
override gives 54 lines with the hint on the last; a config file that is missing, raises, has a syntax
error or no `get_config` gives a traceback. `run(main)` parses flags through `parse_flags`, which turns
each of these into one line naming the flag or the full config key and what to do. An exception raised
inside `hjepa_jax` itself is a bug, not a mistake on the command line, and keeps its traceback.
"""

import contextlib
import os
import sys
import traceback

import ml_collections
from absl import app, flags, logging
from ml_collections import config_flags

from hjepa_jax import config as config_lib
from hjepa_jax.config import ConfigError
from hjepa_jax.data.validate import DataError
from hjepa_jax.errors import RunError

_LIBRARY = os.path.dirname(os.path.abspath(__file__)) + os.sep
_CONFIG = "config"  # the flag define_config defines


def define_config(help_string="Config file (configs/*.py[:arg]).", flag_values=flags.FLAGS, argv=None):
  """`--config=path[:arg]` with `--config.x.y=value` overrides, locked to the schema's keys.

  argv: where ml_collections looks for the overrides (default sys.argv; tests parse their own).
  """
  return config_flags.DEFINE_config_file(
    _CONFIG, None, help_string, flag_values=flag_values, lock_config=True, sys_argv=argv
  )


def run(main):
  """absl's `app.run(main)`, with `parse_flags` as its flag parser."""
  app.run(main, flags_parser=parse_flags)


@contextlib.contextmanager
def user_errors(*extra, log=False):
  """ConfigError, DataError, RunError and `extra` end the program with `error: ...` (status 1), no traceback.

  log: also log the message (to reach a run's log file once training has started).
  """
  try:
    yield
  except (ConfigError, DataError, RunError, *extra) as e:
    if log:
      logging.error("%s", e)
    sys.exit(f"error: {e}")


def parse_flags(argv, flag_values=flags.FLAGS):
  """`flag_values(argv)`; a bad command line exits with `error: ...` (status 1) instead of a traceback."""
  with user_errors():
    try:
      rest = flag_values(argv)
    except Exception as e:  # noqa: BLE001  (a library bug is re-raised below)
      _config_problem(argv, flag_values)  # a mistake in the config file or an override key: its own message
      if not isinstance(e, flags.Error):
        raise
      raise ConfigError(_one_line(str(e))) from None  # absl's own message: an unknown flag, a bad value
    value = flag_values[_CONFIG].value if _CONFIG in flag_values else None
    if value is not None and not isinstance(value, ml_collections.ConfigDict):
      _config_problem(argv, flag_values)  # ml_collections defers a missing file's IOError to first use
      raise ConfigError(f"--{_CONFIG} could not be loaded")
  return rest


def load(spec, flag="--config"):
  """The ConfigDict of "path[:arg]" (what `--config` loads); ConfigError in one line for a mistake in it."""
  path, _, arg = spec.partition(":")
  where = f"{flag}={spec}"
  if not os.path.isfile(path):
    raise ConfigError(f"{where}: no config file {path!r} (from {os.getcwd()}); pass e.g. configs/smoke.py")
  try:
    config = config_lib.load_config(path, arg or None)
  except (ConfigError, DataError) as e:
    raise ConfigError(f"{where}: {e}") from None
  except SyntaxError as e:
    raise ConfigError(f"{where}: syntax error in {e.filename}, line {e.lineno}: {e.msg}") from None
  except Exception as e:  # noqa: BLE001
    frames = traceback.extract_tb(e.__traceback__)
    if frames and frames[-1].filename.startswith(_LIBRARY):
      raise  # raised by hjepa_jax code: a bug
    at = [f for f in frames if os.path.abspath(f.filename) == os.path.abspath(path)]
    line = f" (line {at[-1].lineno})" if at else ""
    raise ConfigError(f"{where}: the config file raised {type(e).__name__}: {_one_line(str(e))}{line}") from None
  if not isinstance(config, ml_collections.ConfigDict):
    raise ConfigError(f"{where}: get_config() returned {type(config).__name__}, not a ConfigDict")
  return config


def check_overrides(config, paths, flag="--config"):
  """Raises ConfigError naming the first of `paths` ("optim.lr", ...) that `config` lacks."""
  for path in paths:
    node = config
    for part in path.split("."):
      if not (isinstance(node, ml_collections.ConfigDict) and part in node):
        raise ConfigError(f"{flag}.{path}: {config_lib.unknown_key(path, _paths(config))}")
      node = node[part]


def _paths(config, prefix=""):
  for key, value in config.items():
    yield prefix + key
    if isinstance(value, ml_collections.ConfigDict):
      yield from _paths(value, prefix + key + ".")


def _config_problem(argv, flag_values):
  """Loads --config's file as `argv` gives it and checks its overrides; raises ConfigError on a mistake."""
  if _CONFIG not in flag_values:
    return
  spec, overrides, flag = None, [], "--" + _CONFIG
  for i, arg in enumerate(argv[1:], 1):
    name, eq, value = arg.lstrip("-").partition("=")
    if name == _CONFIG:
      spec = value if eq else (argv[i + 1] if i + 1 < len(argv) else None)
    elif name.startswith((_CONFIG + ".", "no" + _CONFIG + ".")):
      overrides.append(name.split(".", 1)[1])
  if spec is not None:
    check_overrides(load(spec, flag), overrides, flag)


def _one_line(message):
  lines = [line for line in message.strip().splitlines() if line.strip()]
  return lines[-1].strip() if lines else message


def check_start(config, workdir):
  """launch/main.py's start-up: the run directory and every config value, checked before anything compiles
  or TensorFlow is imported; a mistake exits with one line."""
  from hjepa_jax import experiment  # pylint: disable=g-import-not-at-top  (imports jax: not before tune_host)

  from hjepa_jax import workdir as workdir_lib  # pylint: disable=g-import-not-at-top

  with user_errors():  # PlatformError is a ConfigError
    config_lib.check_workdir(workdir)
    workdir_lib.check_free(workdir)  # a live run there: refused now, not after the data is counted
    experiment.prepare(config)
