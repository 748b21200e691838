"""One run per workdir: an advisory lock file that names its holder and dies with it.

`WORKDIR/run.lock` holds the pid, host, start time and command of the run that owns the workdir, and
that run holds an exclusive `flock` on it while it lives. The kernel drops the flock when the process
dies however it dies (SIGKILL, OOM, power loss of a local disk), so a killed run never blocks its own
resume; a live one makes a second run on the same workdir refuse to start, naming the holder. The file
is emptied, not deleted, on a clean exit: deleting it would let two newcomers lock two different files.
"""

import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
import sys
import time

from hjepa_jax.errors import RunError

LOCK_NAME = "run.lock"


class WorkdirLocked(RunError):
  """Another live process holds the workdir."""


def _holder(fd):
  os.lseek(fd, 0, os.SEEK_SET)
  text = os.read(fd, 1 << 16).decode(errors="replace").strip()
  try:
    return json.loads(text) if text else None
  except ValueError:
    return {"raw": text}


def _describe(info):
  if not info:
    return "a process that has not written its name yet"
  if "raw" in info:
    return f"an unreadable lock ({info['raw'][:80]!r})"
  return f"pid {info.get('pid')} on host {info.get('host')}, started {info.get('started')}: {info.get('command')}"


def _try_lock(fd, workdir):
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except OSError as e:
    if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
      raise
    info = _holder(fd)
    pid = info.get("pid") if info else None
    stop = f" (`kill -TERM {pid}` makes it save and exit)" if pid and info.get("host") == socket.gethostname() else ""
    raise WorkdirLocked(
      f"{workdir} is in use by another run: {_describe(info)}. Wait for it to finish, stop it{stop}, "
      "or give this run another --workdir."
    ) from None


def check_free(workdir):
  """Raises WorkdirLocked when a live run holds `workdir` (a quick look at start-up; `exclusive` takes it)."""
  path = os.path.join(workdir, LOCK_NAME)
  if not os.path.exists(path):
    return
  fd = os.open(path, os.O_RDWR)
  try:
    _try_lock(fd, workdir)
  finally:
    os.close(fd)  # releases the probe's lock, if it got one


@contextlib.contextmanager
def exclusive(workdir):
  """Holds `workdir` for this process; raises WorkdirLocked when another live process holds it."""
  path = os.path.join(workdir, LOCK_NAME)
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    _try_lock(fd, workdir)
    stale = _holder(fd)
    if stale:
      logging.warning("taking over %s from a run that did not exit cleanly (%s)", path, _describe(stale))
    me = {
      "pid": os.getpid(),
      "host": socket.gethostname(),
      "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
      "command": " ".join(sys.argv),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(me).encode(), 0)
    os.fsync(fd)
    try:
      yield path
    finally:
      os.ftruncate(fd, 0)  # released cleanly; the flock goes with the descriptor
  finally:
    os.close(fd)
