"""Conservative overnight run (seed guide, "Phase 1"): ViT-S/16 at 224 px on CIFAR-10 + STL-10.

    python launch/main.py --config=configs/conservative.py --workdir=results/conservative
    tensorboard --logdir results/conservative

Offline with a local CIFAR-10 copy only:
    python launch/main.py --config=configs/conservative.py:local --workdir=results/conservative \
        --config.data.cifar10_dir=/path/to/cifar-10-batches-py

Recipe: 50 epochs, batch 32, AdamW lr 1.5e-4 (5 warmup epochs, cosine), clip 3.0, fused attention
and LayerScale on, 3 hierarchy levels. Expected (the seed guide's targets for an M1 Max, 155k
images): 9-10 min/epoch, ~8 h in total; linear probe 60-70%, k-NN (k=20) 55-65%, final loss < 0.5,
feature std > 0.1. Our own measurements are in BENCHMARKS.md. Fallbacks are one override each,
see README "Fallback plans". Variants: `:model=Ti/16`, `:local`.
"""

from hjepa_jax.config import base_config, parse_arg


def get_config(arg=None):
  arg = parse_arg(arg, model="S/16", local=False)
  c = base_config()  # the schema's defaults are the I-JEPA ViT-S/16 recipe; only differences below

  c.model.variant = arg["model"]
  c.model.layerscale = True
  c.loss.num_hierarchies = 3
  c.loss.hierarchy_weights = (1.0, 0.7, 0.5)
  c.data.datasets = ("cifar10_local",) if arg["local"] else ("cifar10", "stl10")
  c.data.image_size = 224
  c.data.batch_size = 32
  c.data.eval_dataset = "cifar10_local" if arg["local"] else "cifar10"
  c.eval.knn_ks = (1, 5, 20)
  return c
