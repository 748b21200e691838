"""What the training loop does besides the update, apart from the loop: stop requests and a profile.

Like clu's periodic actions, each is a small object the loop calls at its steps: `StopRequest` turns
SIGINT/SIGTERM into a clean stop at the end of the current step; `Profile` writes a `jax.profiler` trace
of a few steps right after the compile (`profile_steps`; TensorBoard's Profile tab or Perfetto reads it).
"""

import logging
import os
import signal
import time

import jax

PROFILE_DIR = "profile"


class StopRequest:
  """SIGINT/SIGTERM ask the loop to finish the current step, save and exit 0; a 2nd SIGINT aborts."""

  def __init__(self):
    self.requested = None
    self._old = {}

  def __enter__(self):
    for sig in (signal.SIGINT, signal.SIGTERM):
      try:
        self._old[sig] = signal.signal(sig, self._handle)
      except ValueError:  # not the main thread (e.g. a notebook worker): no handlers
        pass
    return self

  def _handle(self, signum, frame):
    if self.requested is not None and signum == signal.SIGINT:
      raise KeyboardInterrupt
    self.requested = signal.Signals(signum).name
    logging.warning(
      "%s received: finishing the current step, saving a checkpoint and exiting "
      "(press Ctrl-C again to abort without saving)",
      self.requested,
    )

  def __exit__(self, *exc):
    for sig, old in self._old.items():
      signal.signal(sig, old)


class Profile:
  """A `jax.profiler` trace of `steps` updates right after the first (compiled) one, into WORKDIR/profile.

  The loop calls `start()` once the first update of the session has run (so the compile stays out of
  the trace) and `after(step, metrics)` after each later update; the trace stops, complete, after step
  `first + steps`. `stop()` (also at tear-down, on a stop request or an error) ends a trace still open.
  """

  def __init__(self, workdir, steps, first_step):
    self.dir = os.path.join(workdir, PROFILE_DIR)
    self.first, self.last = first_step + 1, first_step + steps  # 1-based steps, as checkpoints name them
    self._t0 = None

  @classmethod
  def create(cls, workdir, steps, start, cleanup):
    """A Profile for this session (the updates after step start + 1), or None: off, or not process 0."""
    if not steps or jax.process_index() > 0:
      return None
    profile = cls(workdir, steps, start + 1)
    cleanup.callback(profile.stop)
    return profile

  def start(self):
    os.makedirs(self.dir, exist_ok=True)
    jax.profiler.start_trace(self.dir)
    self._t0 = time.time()

  def after(self, step, metrics):
    if step == self.last and self._t0 is not None:
      jax.block_until_ready(metrics)  # the traced steps' device work, complete
      self.stop(step)

  def stop(self, step=None):
    if self._t0 is None:
      return
    jax.profiler.stop_trace()
    seconds, self._t0 = time.time() - self._t0, None
    traced = f"steps {self.first}-{step}" if step else f"steps from {self.first} (the run ended first)"
    logging.info(
      "profile of %s (%.1f s) written to %s: tensorboard --logdir %s (Profile tab), or ui.perfetto.dev",
      traced,
      seconds,
      self.dir,
      self.dir,
    )
