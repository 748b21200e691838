"""Measures the configured update on synthetic inputs: compile time, step time, FLOPs, memory.

The step is the run's own (`experiment.step_spec`: model, masks, losses, accumulation) with its schedules
over a nominal run, on random uint8 images shaped as the input pipeline delivers them, compiled ahead of
time so tracing, compiling and stepping are timed apart. Imports no TensorFlow (launch/benchmark.py runs
it where TensorFlow is absent).
"""

import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from hjepa_jax import config as config_lib
from hjepa_jax import experiment
from hjepa_jax import platform as platform_lib
from hjepa_jax.optim import make_optimizer
from hjepa_jax.train_step import init_state, make_train_step

# Schedules (lr, weight decay, EMA) are resolved over a nominal run: they change constants, not the cost.
NOMINAL_STEPS, NOMINAL_WARMUP = 1000, 10


def synthetic_batch(cfg, spec, seed=0):
  """Random uint8 inputs of one update (the second view and local crops when the losses read them)."""
  images = cfg.data.batch_size * spec.grad_accum_steps
  size = cfg.data.image_size
  shapes = {"image": (images, size, size, 3)}
  if spec.views.enabled:
    shapes["image_view2"] = shapes["image"]
    if spec.views.num_local:
      local = cfg.data.multicrop.local_size
      shapes["local"] = (images, spec.views.num_local, local, local, 3)
  rs = np.random.RandomState(seed)
  return {name: rs.randint(0, 256, shape, np.uint8) for name, shape in shapes.items()}


def _flops(stage):
  """XLA's FLOP count of a Lowered or Compiled stage (None where the backend has no cost analysis)."""
  try:
    cost = stage.cost_analysis()
  except Exception:  # pylint: disable=broad-except  (backends without a cost model raise assorted errors)
    return None
  if isinstance(cost, (list, tuple)):  # older jax: one dict per computation
    cost = cost[0] if cost else {}
  flops = (cost or {}).get("flops")
  return float(flops) if flops is not None and flops >= 0 else None


def _memory_analysis(compiled):
  try:
    stats = compiled.memory_analysis()
  except Exception:  # pylint: disable=broad-except
    return {}
  names = ("argument", "output", "alias", "temp", "generated_code")
  return {f"xla_{n}_bytes": int(getattr(stats, f"{n}_size_in_bytes")) for n in names if stats is not None}


def step_program(cfg, spec, plat, histograms=True):
  """(jitted step, optimizer) of `spec` as a run jits it (state donated where the backend honours it), with
  the run's histogram branch (`histogram_every_steps`) unless `histograms` is False (model FLOPs)."""
  init_rng, _ = experiment.init_rngs(cfg.seed)
  tx = make_optimizer(spec.optim, jax.eval_shape(spec.model.init, init_rng))
  every = cfg.histogram_every_steps if histograms else 0
  return jax.jit(make_train_step(spec, tx, histogram_every=every), donate_argnums=(0,) if plat.donate else ()), tx


def lowered_flops(cfg, spec, plat=None):
  """XLA's FLOP count of the update of `spec` before its passes, from abstract inputs: traced and lowered,
  never compiled or run, so it costs seconds even for a large model (None without a cost model)."""
  plat = plat or platform_lib.detect()
  step, tx = step_program(cfg, spec, plat, histograms=False)
  init_rng, step_rng = experiment.init_rngs(cfg.seed)
  state = jax.eval_shape(lambda r: init_state(spec.model, tx, r), init_rng)
  batch = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), synthetic_batch(cfg, spec))
  return _flops(step.lower(state, batch, step_rng))


def measure_step(cfg, *, steps, warmup, plat=None, spec=None, fresh_steps=0):
  """Compiles and times the update of `cfg`; returns a dict of plain numbers.

  Raises ConfigError (a PlatformError for a setting this backend cannot run) before compiling anything.
  The step time is the median of `steps` calls after `warmup` untimed ones, each waited for
  (block_until_ready), on a batch already on the device. `spec`: the run's own StepSpec (its real
  schedules; `cfg` already checked, e.g. by `experiment.prepare`); by default one is built from `cfg`.

  fresh_steps > 0 also times that many steps each on a new batch (a device copy made by another program just
  before, as the input pipeline makes one): "step_ms_fresh", closer to what a training run sees. On a GPU XLA
  re-records the step's CUDA graphs when its buffers move: an H200's training loop ran 2.1x slower than the
  reused-batch step (2026-12-04). How much of that this copy reproduces is not measured yet.
  """
  plat = plat or platform_lib.detect()
  if spec is None:
    config_lib.check_schema(cfg)
    plat.check_dtype(cfg.model.dtype)
    plat.check_attention(cfg.model.fused_attention, cfg.model.attention_impl)
    spec = experiment.step_spec(cfg, total_steps=NOMINAL_STEPS, warmup_steps=NOMINAL_WARMUP)
  init_rng, step_rng = experiment.init_rngs(cfg.seed)
  step, tx = step_program(cfg, spec, plat)
  state = jax.jit(lambda r: init_state(spec.model, tx, r))(init_rng)
  batch = jax.device_put(synthetic_batch(cfg, spec))

  t0 = time.perf_counter()
  lowered = step.lower(state, batch, step_rng)
  t1 = time.perf_counter()
  compiled = lowered.compile()
  t2 = time.perf_counter()
  state, times, losses = _timed_updates(compiled, state, step_rng, lambda: batch, untimed=1 + warmup, steps=steps)
  step_s = statistics.median(times)
  params = sum(x.size for x in jax.tree_util.tree_leaves(state["params"]))
  fresh = None
  if fresh_steps:
    renew = jax.jit(lambda b: jax.tree_util.tree_map(lambda x: x + jnp.zeros((), x.dtype), b))
    _, fresh, _ = _timed_updates(compiled, state, step_rng, lambda: renew(batch), untimed=1, steps=fresh_steps)
  images = batch["image"].shape[0]
  return {
    "batch": images,
    "image_size": cfg.data.image_size,
    "params": params,
    "lower_s": t1 - t0,
    "compile_s": t2 - t0,  # trace + lower + XLA compile
    "xla_compile_s": t2 - t1,
    "timed_steps": len(times),
    "step_ms": 1e3 * step_s,
    "step_ms_min": 1e3 * min(times),
    "step_ms_max": 1e3 * max(times),
    "images_per_s": images / step_s,
    "step_ms_fresh": fresh and 1e3 * statistics.median(fresh),
    "flops_per_step": _flops(compiled),  # the compiled program (custom calls such as cuDNN attention count 0)
    "flops_lowered": _flops(lowered),  # before XLA's passes (counts remat recomputation, not custom calls)
    "loss_first": losses[0],
    "loss_last": losses[-1],
    **_memory_analysis(compiled),
  }


def _timed_updates(compiled, state, rng, next_batch, *, untimed, steps):
  """Runs `untimed` then `steps` updates, each waited for (block_until_ready); returns the state, the seconds of
  the timed ones and every loss. `next_batch()` gives each call's batch, inside the timed span: a copy made just
  before a step is part of what a training run's step costs."""
  times, losses = [], []
  for i in range(untimed + steps):
    start = time.perf_counter()
    state, metrics = compiled(state, next_batch(), rng)
    jax.block_until_ready((state, metrics))
    if i >= untimed:
      times.append(time.perf_counter() - start)
    losses.append(float(metrics["loss"]))
  return state, times, losses
