"""Lazy package attributes (PEP 562): a package names its heavy members without importing their modules.

`hjepa_jax.data` and `hjepa_jax.evaluation` export functions whose modules import TensorFlow or jax; a config
that only needs `default_data_config`, or the report that only needs a path, must not pay for those imports.
"""

import importlib


def attributes(package, table):
  """(__getattr__, __dir__) for a package module whose names in `table` ({name: module}) load on first use."""

  def getattr_(name):
    if name in table:
      value = getattr(importlib.import_module(table[name]), name)
      setattr(importlib.import_module(package), name, value)  # the next lookup is a plain attribute
      return value
    raise AttributeError(f"module {package!r} has no attribute {name!r}")

  def dir_():
    return sorted(set(vars(importlib.import_module(package))) | set(table))

  return getattr_, dir_
