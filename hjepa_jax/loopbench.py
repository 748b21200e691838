"""Where a real training step's time goes: the update alone, fed by the device input path, and inside the loop's
mechanics, each in milliseconds per step, on the run's own step (its config and schedules).

Why: on an H200 (2026-12-04) the training loop ran at half the rate of the step timed on one reused synthetic
batch, which is what launch/benchmark.py plans a run from. A profile showed the host rewriting the step's CUDA
graphs (XLA's command buffers) at every step: a graph is re-recorded when a buffer it touches moves, and a new
batch made by a separate augmentation program moves them. The variants separate those causes:

  reused   the step on one batch, dispatched back to back, waited for at the end
  waited   the same, each step waited for (how stepbench times the plan)
  input    the augmentation alone (a new batch each step)
  fresh    augmentation, then the step on its batch: two programs per step
  loop     fresh plus the loop's mechanics (each step's metrics kept, the previous step's NaN flag read), with the
           host's time in each phase
  fused    augmentation and step as one program fed the batch's indices: nothing is allocated between steps
  fused_loop  fused inside the loop's mechanics

Run it twice, once with XLA_FLAGS=--xla_gpu_enable_command_buffer= (no CUDA graphs), to see the graphs' share.
The device input path only (data.pipeline=device, the accelerator path); imports no TensorFlow.
"""

import time

import jax

from hjepa_jax import config as config_lib
from hjepa_jax import data as data_lib
from hjepa_jax import experiment, stepbench
from hjepa_jax import platform as platform_lib
from hjepa_jax.config import ConfigError
from hjepa_jax.train_step import init_state

VARIANTS = ("reused", "waited", "input", "fresh", "loop", "fused", "fused_loop")
TRACE_STEPS = 20
PHASES = ("input", "step", "flag")  # the loop's host time: making the batch, dispatching the update, the NaN flag


def fused_step(step, iterator, donate):
  """jit of (state, images, indices, rng) -> step(state, iterator.augment(images, *indices), rng): one program
  per update. `step` is the jitted update; both inner jits are inlined into the outer program."""
  return jax.jit(
    lambda state, images, indices, rng: step(state, iterator.augment(images, *indices), rng),
    donate_argnums=(0,) if donate else (),
  )


class _Bench:
  """The state threaded through the variants (each one continues from the last one's state)."""

  def __init__(self, state, warmup, steps):
    self.state, self.warmup, self.steps = state, warmup, steps

  def per_step_ms(self, one):
    for _ in range(self.warmup):
      one()
    jax.block_until_ready(self.state)
    start = time.perf_counter()
    for _ in range(self.steps):
      one()
    jax.block_until_ready(self.state)
    return (time.perf_counter() - start) / self.steps * 1e3


def measure_loop(cfg, *, steps, warmup=5, variants=VARIANTS, trace_dir=None, plat=None, log=print):
  """{"ms": {variant: ms per step}, "phases_ms": {loop variant: host ms per step in each phase}, ...} of `cfg`.

  Raises ConfigError unless cfg.data.pipeline is "device". `trace_dir`: a profiler trace (with a Perfetto copy)
  of TRACE_STEPS steps of `loop`, written last."""
  plat = plat or platform_lib.detect()
  unknown = set(variants) - set(VARIANTS)
  if unknown:
    raise ConfigError(f"unknown loop variants {sorted(unknown)}; choose from {VARIANTS}")
  if cfg.data.pipeline != "device":
    raise ConfigError(f"data.pipeline={cfg.data.pipeline!r}: the loop benchmark times the device input path only")
  config_lib.check_schema(cfg)
  plat.check_dtype(cfg.model.dtype)
  plat.check_attention(cfg.model.fused_attention, cfg.model.attention_impl)
  spec = experiment.step_spec(cfg, total_steps=stepbench.NOMINAL_STEPS, warmup_steps=stepbench.NOMINAL_WARMUP)
  init_rng, step_rng = experiment.init_rngs(cfg.seed)
  step, tx = stepbench.step_program(cfg, spec, plat)
  it = data_lib.make_device_iterator(cfg.data, seed=cfg.seed, num_views=2 if spec.views.enabled else 1)
  bench = _Bench(jax.jit(lambda r: init_state(spec.model, tx, r))(init_rng), warmup, steps)
  batch = jax.block_until_ready(next(it))
  start = time.perf_counter()
  compiled = step.lower(bench.state, batch, step_rng).compile()
  result = {"batch": cfg.data.batch_size, "steps": steps, "compile_s": time.perf_counter() - start, "ms": {}}

  def run(one):
    bench.state, metrics = one()
    return metrics

  fused = None

  def fused_update():
    nonlocal fused
    if fused is None:  # compiled on first use, timed apart
      t = time.perf_counter()
      fused = fused_step(step, it, plat.donate).lower(bench.state, it.images, it.indices(it.step), step_rng).compile()
      result["fused_compile_s"] = time.perf_counter() - t
    indices = it.indices(it.step)
    it.step += 1
    return lambda: fused(bench.state, it.images, indices, step_rng)

  updates = {  # () -> a thunk running one update on the next batch: two programs, or one
    "separate": lambda: (lambda b: lambda: compiled(bench.state, b, step_rng))(next(it)),
    "fused": fused_update,
  }

  def loop_step(update, phases, kept, previous):
    """One step as train.py's loop takes it: the batch, the update, its metrics kept, the last step's flag read."""
    t0 = time.perf_counter()
    thunk = update()
    t1 = time.perf_counter()
    metrics = run(thunk)
    t2 = time.perf_counter()
    kept.append(metrics)
    if previous:
      float(jax.device_get(previous.pop()["nonfinite"]))
    previous.append(metrics)
    for k, dt in zip(PHASES, (t1 - t0, t2 - t1, time.perf_counter() - t2)):
      phases[k] += dt

  def looped(update, name):
    phases, kept, previous = dict.fromkeys(PHASES, 0.0), [], []
    ms = bench.per_step_ms(lambda: loop_step(update, phases, kept, previous))
    result.setdefault("phases_ms", {})[name] = {k: v / (warmup + steps) * 1e3 for k, v in phases.items()}
    return ms

  def input_only():
    start = time.perf_counter()
    for _ in range(steps):
      out = next(it)
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / steps * 1e3

  def reused():
    return run(lambda: compiled(bench.state, batch, step_rng))

  timed = {
    "reused": lambda: bench.per_step_ms(reused),
    "waited": lambda: bench.per_step_ms(lambda: jax.block_until_ready(reused())),
    "input": input_only,
    "fresh": lambda: bench.per_step_ms(lambda: run(updates["separate"]())),
    "loop": lambda: looped(updates["separate"], "loop"),
    "fused": lambda: bench.per_step_ms(lambda: run(updates["fused"]())),
    "fused_loop": lambda: looped(updates["fused"], "fused_loop"),
  }
  for name in variants:
    result["ms"][name] = timed[name]()
    log(f"  {name}: {result['ms'][name]:.2f} ms/step")
  if trace_dir:
    phases, kept, previous = dict.fromkeys(PHASES, 0.0), [], []
    with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
      for _ in range(TRACE_STEPS):
        loop_step(updates["separate"], phases, kept, previous)
      jax.block_until_ready(bench.state)
    result["trace_dir"] = trace_dir
  return result
