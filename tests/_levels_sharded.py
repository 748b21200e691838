"""Background job of tests/test_levels.py (tests/_smoke.BACKGROUND): each hierarchy design's update on two forced
CPU devices (the batch sharded) equals the update on one; prints "ok <device count>".

A process of its own because the device count is fixed when jax starts; queued with the launched runs so it
compiles on the second core while the in-process tests use the first.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P  # noqa: E402

from tests._core import synthetic_images, tiny_setup  # noqa: E402


def main():
  for design in ("deep", "multiscale"):
    _, _, state, step_fn = tiny_setup(**{"data.batch_size": 8, "loss.hierarchy": design})
    batch, rng = {"image": synthetic_images(8)}, jax.random.PRNGKey(3)
    _, one = jax.jit(step_fn)(state, batch, rng)
    mesh = Mesh(np.array(jax.devices()), ("data",))
    sharded = jax.device_put(batch, NamedSharding(mesh, P("data")))
    _, two = jax.jit(step_fn)(jax.device_put(state, NamedSharding(mesh, P())), sharded, rng)
    np.testing.assert_allclose(one["loss"], two["loss"], rtol=1e-5)
    np.testing.assert_allclose(one["loss_level_1"], two["loss_level_1"], rtol=1e-5)
  print("ok", jax.device_count())


if __name__ == "__main__":
  main()
