"""Failures a user can act on: the launcher prints their message (which says what to do), no traceback.

Anything else that escapes the library is a bug and keeps its traceback.
"""


class RunError(RuntimeError):
  """A run stopped or refused to start for a reason outside the code (data, disk, another run, divergence)."""
