"""Tiny builders shared by the core tests (kept small: CPU compiles dominate test time).

Everything is built from the config schema through hjepa_jax.experiment, as a run builds it, so
the tests exercise the one path from config to model/step and restate no defaults.
"""

import os

import jax
import numpy as np

from hjepa_jax import experiment
from hjepa_jax.config import base_config, load_config
from hjepa_jax.optim import make_optimizer
from hjepa_jax.train_step import init_state, make_train_step


def core_config(**overrides):
  """base_config() with a tiny model: 32 px images, patch 4 (8x8 grid), width 32, depth 2, 2 levels.

  overrides: {"dotted.key": value}, e.g. core_config(**{"model.rope": True}).
  """
  c = base_config()
  c.model.variant = ""
  c.model.width, c.model.depth, c.model.num_heads, c.model.patch_size = 32, 2, 2, 4
  c.model.predictor.width, c.model.predictor.depth, c.model.predictor.num_heads = 32, 1, 2
  c.data.image_size = 32
  c.loss.num_hierarchies, c.loss.hierarchy_weights = 2, (1.0, 0.5)
  c.optim.lr = 1e-3
  c.update_from_flattened_dict(overrides)
  return c


def tiny_model(**overrides):
  return experiment.model(core_config(**overrides))


def tiny_setup(total_steps=50, warmup_steps=5, seed=0, **overrides):
  """(spec, optimizer, state, pure train_step) for core_config(**overrides)."""
  spec = experiment.step_spec(core_config(**overrides), total_steps, warmup_steps)
  init_rng = jax.random.PRNGKey(seed)
  tx = make_optimizer(spec.optim, jax.eval_shape(spec.model.init, init_rng))
  return spec, tx, init_state(spec.model, tx, init_rng), make_train_step(spec, tx)


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
  # Two predictor blocks: with one, the joint predictor layout computes exactly the per-block one.
  c.model.predictor.width, c.model.predictor.depth, c.model.predictor.num_heads = 16, 2, 2
  c.model.fpn.feature_dim, c.model.projector.hidden_dim, c.model.projector.dim = 16, 32, 16
  c.data.image_size, c.data.batch_size, c.data.num_parallel_calls, c.data.prefetch = 24, 8, 1, 0
  c.data.multicrop.local_size = 8
  c.mask.min_context = 4
  c.optim.lr = 3e-3
  c.update_from_flattened_dict(overrides)
  return c
