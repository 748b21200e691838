"""The seed's "safe" overnight run: the conservative recipe, 45 epochs, remat on, weights 1.0/0.7/0.5.

    python launch/main.py --config=configs/overnight_safe.py --workdir=results/overnight_safe

It exists because the original project's conservative config crashed on switches its code did not
accept; here every switch is validated at start-up, so this is simply the lower-memory variant:
per-block rematerialisation (`nothing_saveable`) trades step time for activation memory, and
LayerScale is off as in the seed's safe config. Expected (seed guide, M1 Max): 10-11 min/epoch,
~7.5 h; linear probe 55-65%, k-NN (k=20) 50-60%, final loss < 0.6, feature std > 0.1.
Variants as in conservative.py: `:model=Ti/16`, `:local` (local CIFAR-10 copy only).
"""

import os

from hjepa_jax.config import load_config


def get_config(arg=None):
  c = load_config(os.path.join(os.path.dirname(os.path.abspath(__file__)), "conservative.py"), arg)
  c.total_epochs = 45.0
  c.model.layerscale = False
  c.model.remat = "nothing_saveable"
  return c
