"""Background job of tests/test_levels.py (tests/_smoke.BACKGROUND): the hierarchy designs' updates, computed in a
process of its own (two forced CPU devices; the device count is fixed when jax starts) so their compiles use the
second core while the in-process tests use the first. The test asserts on WORKDIR/levels.json:

- "sharded": {design: {"one": [loss, loss_level_1], "two": [...]}}: one update on one device and on two (the batch
  sharded);
- "accumulation": {design: {"1": metrics, "2": metrics, "compiles": [n, n]}}: three updates of 8 images as one
  batch and as two micro-batches, joint predictor layout and remat on, and how often each step compiled.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P  # noqa: E402

from hjepa_jax import jsonfile  # noqa: E402
from tests._core import synthetic_images, tiny_setup  # noqa: E402

DESIGNS = ("deep", "multiscale")


def _floats(metrics):
  return {k: float(np.asarray(v)) for k, v in metrics.items() if np.asarray(v).ndim == 0}


def sharded(design):
  _, _, state, step_fn = tiny_setup(**{"data.batch_size": 8, "loss.hierarchy": design})
  batch, rng = {"image": synthetic_images(8)}, jax.random.PRNGKey(3)
  _, one = jax.jit(step_fn)(state, batch, rng)
  mesh = Mesh(np.array(jax.devices()), ("data",))
  on_two = jax.device_put(batch, NamedSharding(mesh, P("data")))
  _, two = jax.jit(step_fn)(jax.device_put(state, NamedSharding(mesh, P())), on_two, rng)
  return {name: [float(m["loss"]), float(m["loss_level_1"])] for name, m in (("one", one), ("two", two))}


def accumulation(design):
  out, compiles = {}, []
  for k in (1, 2):
    over = {
      "loss.hierarchy": design,
      "optim.grad_accum_steps": k,
      "data.batch_size": 8 // k,
      "optim.lr": 1e-2,
      "optim.eps": 1.0,
      "model.predictor.layout": "joint",
      "model.remat": "nothing_saveable",
    }
    _, _, state, step_fn = tiny_setup(warmup_steps=0, **over)
    step = jax.jit(step_fn)
    for _ in range(3):
      state, metrics = step(state, {"image": synthetic_images(8)}, jax.random.PRNGKey(3))
    compiles.append(step._cache_size())  # pylint: disable=protected-access
    out[str(k)] = _floats(metrics)
  return dict(out, compiles=compiles)


def main(workdir):
  facts = {
    "devices": jax.device_count(),
    "sharded": {d: sharded(d) for d in DESIGNS},
    "accumulation": {d: accumulation(d) for d in DESIGNS},
  }
  jsonfile.write(os.path.join(workdir, "levels.json"), facts)  # atomic, and makes the folder


if __name__ == "__main__":
  main(sys.argv[1])
