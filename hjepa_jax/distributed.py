"""Several hosts on JAX's own runtime: `jax.distributed.initialize` from three flags or their env vars.

Each process of a run is started with the same command plus where the coordinator (process 0) listens,
how many processes there are and which one this is: `--coordinator_address=HOST:PORT --num_processes=N
--process_id=I`, or `JAX_COORDINATOR_ADDRESS`, `JAX_NUM_PROCESSES`, `JAX_PROCESS_ID` (a flag wins over its
variable). jax itself reads only JAX_COORDINATOR_ADDRESS; the other two variables are ours, so a plain
`ssh host env ... python launch/main.py` works anywhere. With neither flag nor variable for the number of
processes (or 1), nothing is initialised: a one-process run (jax's SLURM/Open MPI detection is not used).

Initialisation must come before anything asks jax for its devices. On CPU the processes exchange
gradients through gloo (jax >= 0.5 ships it; jax 0.5.0 defaults to no CPU collectives at all).
"""

import os

from absl import flags

from hjepa_jax.config import ConfigError

ENV = {
  "coordinator_address": "JAX_COORDINATOR_ADDRESS",
  "num_processes": "JAX_NUM_PROCESSES",
  "process_id": "JAX_PROCESS_ID",
}


def define_flags(flag_values=flags.FLAGS):
  """--coordinator_address, --num_processes, --process_id (default: their JAX_* variables)."""
  flags.DEFINE_string(
    "coordinator_address",
    None,
    f"Several hosts: HOST:PORT where process 0 listens (default ${ENV['coordinator_address']}).",
    flag_values=flag_values,
  )
  flags.DEFINE_integer(
    "num_processes",
    None,
    f"Several hosts: number of processes (default ${ENV['num_processes']}, else 1).",
    flag_values=flag_values,
  )
  flags.DEFINE_integer(
    "process_id",
    None,
    f"Several hosts: this process, 0..num_processes-1 (default ${ENV['process_id']}).",
    flag_values=flag_values,
  )


def settings(flag_values=flags.FLAGS, environ=os.environ):
  """(coordinator_address, num_processes, process_id) from the flags, else the env vars; None where unset.

  Raises ConfigError naming the flag when the three do not make a run: a count without an address or an
  id, an id out of range, a variable that is not a number.
  """
  given = {}
  for name, var in ENV.items():
    value = flag_values[name].value
    if value is None and environ.get(var):
      value = environ[var]
      if name != "coordinator_address":
        try:
          value = int(value)
        except ValueError:
          raise ConfigError(f"${var}={value!r} is not a whole number; set --{name} or fix the variable") from None
    given[name] = value
  address, count, index = given["coordinator_address"], given["num_processes"], given["process_id"]
  if count is None or count == 1:
    if index not in (None, 0):
      raise ConfigError(
        f"--process_id={index} without --num_processes > 1: give --num_processes (or ${ENV['num_processes']})"
      )
    return address, count, index
  if count < 1:
    raise ConfigError(f"--num_processes={count} must be at least 1")
  missing = [f"--{n} (or ${ENV[n]})" for n in ("coordinator_address", "process_id") if given[n] is None]
  if missing:
    raise ConfigError(f"--num_processes={count} also needs {' and '.join(missing)}, the same address on every process")
  if not 0 <= index < count:
    raise ConfigError(f"--process_id={index} must be in 0..{count - 1} (--num_processes={count})")
  if ":" not in address:
    raise ConfigError(f"--coordinator_address={address!r} needs a port: HOST:PORT (process 0's host)")
  return address, count, index


def initialize(flag_values=flags.FLAGS, environ=os.environ):
  """Joins the run's other processes (blocks until all have started) when several are asked for.

  Returns the number of processes (1: nothing done). Call before anything touches jax's devices.
  """
  address, count, index = settings(flag_values, environ)
  if count is None or count == 1:
    return 1
  import jax  # pylint: disable=g-import-not-at-top  (after tune_host and the flags)

  if "JAX_CPU_COLLECTIVES_IMPLEMENTATION" not in environ:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # only used by the CPU backend
  jax.distributed.initialize(coordinator_address=address, num_processes=count, process_id=index)
  return count
