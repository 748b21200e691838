"""Makes TensorFlow (and tensorflow_datasets) look absent, as on the accelerator machines.

Put this folder first on PYTHONPATH of a subprocess (tests/_smoke.NO_TENSORFLOW_ENV): Python imports
`sitecustomize` at start-up, before any of our code. Every import finder is wrapped so that it does
not find those packages: `import tensorflow` raises ModuleNotFoundError and
`importlib.util.find_spec("tensorflow")` is None (libraries such as etils probe it that way).
"""

import sys

BLOCKED = ("tensorflow", "tensorflow_datasets")


class _Hide:
  def __init__(self, finder):
    self._finder = finder

  def find_spec(self, name, path=None, target=None):
    if name.split(".")[0] in BLOCKED:
      return None
    find = getattr(self._finder, "find_spec", None)
    return find(name, path, target) if find else None

  def __getattr__(self, attr):
    return getattr(self._finder, attr)


sys.meta_path[:] = [_Hide(f) for f in sys.meta_path]
