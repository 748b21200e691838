"""Conservative overnight run (seed guide, "Phase 1"): ViT-S/16 at 224 px on CIFAR-10 + STL-10.

    python launch/main.py --config=configs/conservative.py --workdir=results/conservative
    tensorboard --logdir results/conservative

Offline with a local CIFAR-10 copy only:
    python launch/main.py --config=configs/conservative.py:local --workdir=results/conservative \
        --config.data.cifar10_dir=/path/to/cifar-10-batches-py

Recipe: 50 epochs, batch 32, AdamW lr 1.5e-4 (5 warmup epochs, cosine), clip 3.0, fused attention
and LayerScale on, 3 hierarchy levels. The seed guide's targets for an M1 Max (155k images): 9-10
min/epoch, ~8 h in total; linear probe 60-70%, k-NN (k=20) 55-65%, final loss < 0.5, feature std > 0.1.

That time cannot be met. One update is 979 GFLOP of model FLOPs for 32 images, 30.6 GFLOP per image
(`launch/plan.py`: XLA's count of the unrolled update, with the schema's joint predictor layout); an epoch
is 4,843 updates = 4.74 PFLOP. The M1 Max GPU's peak is 10.4 TFLOP/s float32 (hjepa_jax/devices.py), so
even at 100% of it an epoch takes 7.6 min and 50 epochs 6.3 h; at the 40% utilisation the planner assumes
(devices.PLANNING_UTILISATION, the reasoning there) 19 min per epoch and 15.8 h in all. Run `python
launch/plan.py --config=configs/conservative.py --hours=8` for this machine's figures (README "Plan a run").

`:budget=8h` is the recipe that fits N hours by the same arithmetic: 128 px instead of 224 (CIFAR-10
is 32 px and STL-10 96 px, so 224 px adds pixels, not information; 8x8 patches: 10.6 GFLOP per image,
1.65 PFLOP per epoch, 6.6 min per epoch at 40% of the M1 Max) and as many of the 50 epochs as fit
in BUDGET_SHARE (90%) of the budget, the rest left for start-up, evaluations and checkpoints: for 8 h,
floor(0.9 x 28,800 s x 4.16 TFLOP/s / 1.65 PFLOP) = 65, so all 50 epochs, predicted 5.5 h; warmup scales
with the epochs where fewer fit (`:budget=5h`: 40 epochs).
The run's own start-up check (time_budget_hours, set to the budget) warns if the night is slower.
Our own measurements are in BENCHMARKS.md. Fallbacks are one override each, see README "Fallback
plans". Variants: `:model=Ti/16`, `:local`, `:budget=8h`.

What its switches buy, measured with intervals: docs/switch_buys.md, the rows "LayerScale", "Second dataset in
the mix" (STL-10 beside CIFAR-10), "Flash attention (XLA's fused path)" and "Predictor layout: joint instead of
per_block" (tests/test_buys.py keeps this list equal to the switches this config turns on).
"""

from hjepa_jax.config import base_config, parse_arg
from hjepa_jax.devices import budget_hours, epochs_within

# The budget recipe's arithmetic (the docstring's): model FLOPs per image at BUDGET_IMAGE_SIZE (XLA's count
# of the unrolled update, batch 32, `python launch/plan.py --config=configs/conservative.py:budget=8h`), the
# seed's epoch (CIFAR-10 train + STL-10 unlabelled+train) and machine, and the share of the budget planned
# for training (the rest: start-up, evaluations, checkpoints).
BUDGET_IMAGE_SIZE = 128
BUDGET_GFLOP_PER_IMAGE = 10.62
SEED_IMAGES_PER_EPOCH = 155_000
SEED_CHIP = "Apple M1 Max GPU"
BUDGET_SHARE = 0.9


def get_config(arg=None):
  arg = parse_arg(arg, model="S/16", local=False, budget="")
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
  c.report.criteria = "conservative"  # report.md ticks the seed guide's conservative success criteria
  hours = budget_hours(arg["budget"])
  if hours:
    c.data.image_size = BUDGET_IMAGE_SIZE
    c.total_epochs = epochs_within(
      hours, BUDGET_GFLOP_PER_IMAGE, SEED_IMAGES_PER_EPOCH, SEED_CHIP, share=BUDGET_SHARE, most=c.total_epochs
    )
    c.optim.warmup_epochs = c.optim.warmup_epochs * c.total_epochs / 50.0
    c.time_budget_hours = hours
  return c
