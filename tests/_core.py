"""Tiny builders shared by the core tests (kept small: CPU compiles dominate test time)."""
import os

import jax
import numpy as np

from hjepa_jax import switches
from hjepa_jax.config import load_config
from hjepa_jax.masks import MaskSpec
from hjepa_jax.model import BlockOptions, ModelSpec, build_model
from hjepa_jax.optim import OptimSpec, make_optimizer
from hjepa_jax.train_step import StepSpec, init_state, make_train_step


def tiny_model(image_size=32, patch_size=4, width=32, depth=2, num_heads=2, block=BlockOptions(), **kw):
  kw.setdefault("predictor_width", 32)
  kw.setdefault("predictor_depth", 1)
  kw.setdefault("predictor_num_heads", 2)
  return build_model(ModelSpec(image_size=image_size, variant=None, width=width, depth=depth,
                               num_heads=num_heads, patch_size=patch_size, block=block, **kw))


def tiny_setup(total_steps=50, warmup_steps=5, lr=1e-3, weights=(1.0, 0.5), grad_accum_steps=1,
               seed=0, model=None, **optim_kw):
  """(spec, optimizer, state, pure train_step) for a tiny model on 32x32 images, 8x8 grid."""
  model = model or tiny_model()
  spec = StepSpec(model, MaskSpec(grid=model.grid), OptimSpec(total_steps, warmup_steps, lr=lr, **optim_kw),
                  hierarchy_weights=weights, grad_accum_steps=grad_accum_steps)
  params = model.init(jax.random.PRNGKey(seed))
  tx = make_optimizer(spec.optim, params)
  return spec, tx, init_state(model, tx, jax.random.PRNGKey(seed)), make_train_step(spec, tx)


def synthetic_images(n, size=32, seed=0):
  """Smooth structured images (sums of random blobs) so prediction is learnable."""
  rng = np.random.RandomState(seed)
  yy, xx = np.mgrid[0:size, 0:size] / size
  imgs = np.zeros((n, size, size, 3), np.float32)
  for i in range(n):
    for _ in range(3):
      cy, cx, s = rng.rand(), rng.rand(), 0.1 + 0.2 * rng.rand()
      imgs[i] += rng.rand(3) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))[..., None]
  return (255 * imgs / imgs.max()).astype(np.uint8)


def tiny_config(**overrides):
  """configs/smoke.py shrunk to a 6x6-patch model on digits (one compile takes seconds).

  overrides: {"dotted.key": value}, e.g. tiny_config(**{"model.rope": True}).
  """
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  c = load_config(os.path.join(root, "configs", "smoke.py"))
  c.total_steps, c.optim.warmup_steps, c.eval.every_epochs, c.best_metric = 20, 0, 0.0, ""
  c.model.width, c.model.depth, c.model.num_heads = 32, 1, 2
  c.model.predictor.width, c.model.predictor.depth, c.model.predictor.num_heads = 16, 1, 2
  c.model.fpn.feature_dim, c.model.projector.hidden_dim, c.model.projector.dim = 16, 32, 16
  c.data.image_size, c.data.batch_size, c.data.num_parallel_calls, c.data.prefetch = 24, 8, 1, 0
  c.data.multicrop.local_size = 8
  c.mask.min_context = 4
  c.optim.lr = 3e-3
  return switches.apply(c, overrides)
