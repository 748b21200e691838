"""Your own image folder: the recipe that learns (configs/cifar10.py's, plus its contrastive term) at 64 px.

    python launch/main.py --config=configs/folder.py:cpu --workdir=results/folder \
        --config.data.image_folder.dir=/path/to/ROOT    # ROOT/train/<class>/*.jpg, ROOT/val/<class>/... optional
    python launch/evaluate.py --workdir=results/folder --eval_types=knn,linear_probe
    python launch/evaluate.py --workdir=results/folder --eval_types=knn,linear_probe --random_init

Without ROOT/val, `--config.data.image_folder.val_fraction=0.2` holds out a fixed fifth of each class to score
on. `:size=96` (any multiple of 8) keeps the 8x8 patch grid with patch size/8; `:epochs=N`, `:levels=N` and
`:cpu` (the small model) mean what they mean in configs/cifar10.py, whose model, masks and schedules this is.

Why not configs/cifar10.py itself: that config is JEPA alone, the base the guide's table flips each switch
on, and JEPA alone learns little in a short run on a small folder (below). This one adds the contrastive
term (weight 0.1, JEPA still the main loss; "Contrastive component" in docs/switch_buys.md: +9.7 [+7.8,
+11.7] k-NN@20 points on CIFAR-10 over 3 paired seeds) and reads the folder at 64 px with patch 8.

Measured (BENCHMARKS.md "A 64 px image folder"): CIFAR-10 written as an Imagenette-sized folder (9,460 train /
3,920 val images, upsampled to 64 px), `:cpu` at its default 16 epochs (1,168 steps of 128, ~9 min on the
shared 2-core CPU), target encoder, whole val split, 3 paired seeds: k-NN@20 0.400, +9.8 [+8.4, +11.2] points
over random init (linear +5.9 [+5.0, +6.9]); JEPA alone (`loss.contrastive.weight=0`, or configs/cifar10.py with
the same folder flags) +0.9 [+0.6, +1.2]. `:cpu,epochs=48` (27 min): +15.1 (one seed). On a second real
dataset, Fashion-MNIST (28 px grayscale, read at 64 px; the same sizes, the whole test split): +11.2 [+9.0,
+13.5] over random init (JEPA alone +9.2), 48 epochs +15.2 (one seed), though raw pixels' k-NN@20 (0.797) stays
above its features (BENCHMARKS.md "Fashion-MNIST"). The accelerator default (150 epochs, about the steps of the H200
CIFAR-10 run on such a folder) is not measured.

Of docs/switch_buys.md's rows this config turns on "Contrastive component", "Flash attention (XLA's fused
path)" and "Predictor layout: joint instead of per_block" (tests/test_buys.py keeps this list equal to the
switches it turns on).
"""

import os

from hjepa_jax.config import ConfigError, load_config, parse_arg

GRID = 8  # patches per side, as CIFAR-10's 32 px with patch 4: the masks are sized for this grid


def get_config(arg=None):
  arg = parse_arg(arg, cpu=False, size=64, epochs=0.0, levels=2)
  if arg["size"] % GRID or arg["size"] < GRID:
    raise ConfigError(f"config argument 'size' must be a positive multiple of {GRID}, got size={arg['size']}")
  cifar10 = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cifar10.py")
  epochs = arg["epochs"] or (16.0 if arg["cpu"] else 150.0)  # configs/cifar10.py keeps warmup at 10% of it
  c = load_config(cifar10, f"cpu={arg['cpu']},levels={arg['levels']},epochs={epochs}")
  c.data.datasets = ("image_folder",)
  c.data.eval_dataset = "image_folder"
  c.data.image_size = arg["size"]
  c.model.patch_size = arg["size"] // GRID
  c.loss.contrastive.weight = 0.1
  c.eval.every_epochs = 4.0
  return c
