"""Smoke run: a tiny H-JEPA on scikit-learn's bundled digits, no network, ~1 minute on 2 CPU cores.

    python launch/main.py --config=configs/smoke.py --workdir=/tmp/hjepa_smoke

Expect: loss falling from ~1.0 to well below it within ~120 steps, an in-training k-NN on the
digits test split, checkpoints in WORKDIR/checkpoints and TensorBoard events in WORKDIR.
`--config=configs/smoke.py:dataset=cifar10_local` uses a local CIFAR-10 copy instead
(--config.data.cifar10_dir=PATH or $HJEPA_CIFAR10_DIR).

`:contrastive=True` adds InfoNCE between two DeiT-III 3-Augment views of each image to the JEPA loss
(the aggressive config's phase-3 term, weighted up). JEPA alone needs far more than a CPU-minutes run
to move this tiny model off its random-init k-NN quality; the hybrid beats random init within
600 steps on CIFAR-10 (BENCHMARKS.md; asserted by tests/test_evaluate.py's slow test).
"""

from hjepa_jax.config import base_config, parse_arg


def get_config(arg=None):
  arg = parse_arg(arg, dataset="digits", steps=0, contrastive=False)
  c = base_config()
  c.total_epochs = 5.0
  if arg["steps"]:
    c.total_steps = arg["steps"]
  c.log_every_steps = 10
  c.ckpt_every_epochs = 2.0
  c.keep_checkpoints = 2

  c.model.variant = ""
  c.model.width, c.model.depth, c.model.num_heads, c.model.patch_size = 64, 3, 4, 4
  c.model.predictor.width, c.model.predictor.depth, c.model.predictor.num_heads = 32, 2, 2
  c.loss.num_hierarchies = 2
  c.loss.hierarchy_weights = (1.0, 0.5)
  c.optim.lr = 1e-3
  c.optim.warmup_epochs = 1.0

  c.data.datasets = (arg["dataset"],)
  c.data.image_size = 32
  c.data.batch_size = 64
  c.data.crop_scale = (0.5, 1.0)
  c.data.multicrop.local_size = 16  # used when --config.data.multicrop.num_local > 0
  c.model.fpn.feature_dim = 32  # used when --config.model.fpn.enabled=True
  c.model.projector.hidden_dim, c.model.projector.dim = 128, 64  # used by the view-level losses
  c.data.eval_dataset = arg["dataset"]
  c.eval.every_epochs = 2.5
  c.eval.max_examples = 1000
  c.eval.knn_ks = (1, 20)
  if arg["contrastive"]:
    c.loss.contrastive.weight, c.loss.contrastive.temperature = 1.0, 0.2
    c.data.horizontal_flip, c.data.deit3_strength, c.data.crop_scale = True, 1.0, (0.2, 1.0)
  return c
