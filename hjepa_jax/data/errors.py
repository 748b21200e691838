"""The one exception type the data package raises for user-facing problems."""


class DataError(Exception):
  """A dataset cannot be used as configured.

  Messages say what is wrong and what to do about it, because they are what a
  researcher sees in the log of a run that died at startup.
  """
