"""Plan a run before it starts: its update measured on this machine, predicted time and memory, what fits.

A run that cannot finish in the night it was given should be known before the night starts. `make_plan`
builds the run as training does (`experiment.prepare`: the same validation and durations), compiles the
update once, reads its FLOPs and buffers from XLA (cost and memory analysis), times a few steps on
synthetic input on the default device, times the configured input pipeline when its data is present, and
predicts the epoch and the run from those measurements. Over a budget it lists what would fit (fewer
epochs, lower resolution, a smaller model, a larger patch), each with its own predicted time, and it
predicts the same run on another chip (e.g. the seed guide's M1 Max) from the FLOP count and that chip's
peak at a stated utilisation. `BudgetWatch` makes the same check from a real run's first timed steps.
"""

import dataclasses
import math
import os
import time

from hjepa_jax import devices
from hjepa_jax import experiment
from hjepa_jax import platform as platform_lib
from hjepa_jax import stepbench
from hjepa_jax.config import ConfigError
from hjepa_jax.data import DataError
from hjepa_jax.data.order import epoch_length
from hjepa_jax.data.validate import check_data_config
from hjepa_jax.model.vit import VARIANTS, parse_variant

# Pretraining split sizes, for planning where the data is not on this machine (the sources' own counts win
# where it is): CIFAR-10 train 50,000; STL-10 unlabelled 100,000 + train 5,000; ImageNet-100 (the CMC class
# list in data/local.py) 126,689 train images. The seed guide's 155k and 127k images per epoch.
CATALOGUE_SIZES = {
  ("cifar10", "train"): 50_000,
  ("cifar10_local", "train"): 50_000,
  ("stl10", "unlabelled+train"): 105_000,
  ("stl10", "unlabelled"): 100_000,
  ("stl10", "train"): 5_000,
  ("imagenet100", "train"): 126_689,
}

PLANNING_UTILISATION = devices.PLANNING_UTILISATION  # another chip's share of its peak (reasons in devices.py)

# Lower resolutions tried for the alternatives, as fractions of the run's (rounded to the patch, >= 4 patches).
RESOLUTION_FRACTIONS = (0.875, 0.75, 0.625, 0.5, 0.375)


@dataclasses.dataclass
class Plan:
  config: object  # the ConfigDict planned
  exp: experiment.Experiment
  num_examples: int  # one epoch
  data_note: str  # where the epoch size came from
  backend: str
  chip: str  # the name matched against devices.CHIPS
  step: dict  # stepbench.measure_step's numbers
  model_flops: float | None  # one update's FLOPs with every loop unrolled (`model_flops`)
  input_images_per_s: float | None
  input_note: str
  budget_hours: float | None
  device_memory_bytes: int
  device_memory_source: str
  measured_peak_bytes: float
  alternatives: list = dataclasses.field(default_factory=list)  # [(label, flags, total_s, fits)]

  @property
  def flops(self):
    """XLA's cost analysis of the compiled update (a scanned loop's body counted once)."""
    return self.step["flops_per_step"]

  @property
  def step_s(self):
    """The predicted time of one update in a run: the measured step plus the input pipeline's share.

    On the CPU backend the step and the input pipeline run on the same cores, so their times add; on an
    accelerator the pipeline works ahead on the host and the slower of the two sets the pace."""
    return self.paced(self.step["step_ms"] / 1e3)

  def paced(self, compute_s):
    if not self.input_images_per_s:
      return compute_s
    input_s = self.exp.global_batch / self.input_images_per_s
    return compute_s + input_s if self.backend == "cpu" else max(compute_s, input_s)

  @property
  def epoch_s(self):
    return self.exp.steps_per_epoch * self.step_s

  def total_s(self):
    """The run: every update plus the one compile (evaluations and checkpoints not counted)."""
    return self.exp.total_steps * self.step_s + self.step["compile_s"]

  @property
  def predicted_memory_bytes(self):
    """XLA's buffers of the compiled update: arguments + outputs - donated aliases + temporaries."""
    s = self.step
    parts = [s.get(f"xla_{k}_bytes") for k in ("argument", "output", "temp", "generated_code")]
    if any(p is None for p in parts):
      return None
    return sum(parts) - s.get("xla_alias_bytes", 0)

  @property
  def over_budget_s(self):
    return None if self.budget_hours is None else self.total_s() - 3600 * self.budget_hours


def epoch_size(data_cfg):
  """(examples per epoch, where the figure came from): the sources' count, or the catalogue's when absent."""
  from hjepa_jax import data as data_lib  # pylint: disable=g-import-not-at-top

  try:
    return data_lib.pretrain_num_examples(data_cfg), "counted from the data"
  except DataError as e:
    entries = check_data_config(data_cfg)
    missing = [(x.name, x.split) for x in entries if (x.name, x.split) not in CATALOGUE_SIZES]
    if missing:
      raise DataError(f"cannot plan without the data: no catalogue size for {missing} in plan.py ({e})") from None
    n = epoch_length(data_cfg, [CATALOGUE_SIZES[(x.name, x.split)] for x in entries])
    return n, f"catalogue size (data not present: {str(e).split('. ')[0]})"


def _twin(config):
  """The same update with no loop for XLA's cost analysis to count once: the whole batch in one micro-batch
  (same masks: their capacities depend on the images per update) and no remat scan."""
  accum = config.optim.grad_accum_steps
  return _override(
    config, {"data.batch_size": config.data.batch_size * accum, "optim.grad_accum_steps": 1, "model.remat": "none"}
  )


def model_flops(config, plat, num_examples):
  """FLOPs of one update of `config` as the model defines them: XLA's count before its passes, of the update
  unrolled (`_twin`). Gradient accumulation and remat run as scans whose body XLA's cost analysis counts once
  (a 4-step accumulation reads as a quarter of its work); remat's recomputation is not model work."""
  twin = _twin(config)
  exp, _ = experiment.prepare(twin, plat, num_examples=num_examples)
  return stepbench.lowered_flops(twin, exp.step_spec, plat)


def input_rate(reader, exp, batches):
  """(images/s of the configured input iterator over `batches` batches after a first one, note); None, with
  the reason, where the data is not present."""
  import jax  # pylint: disable=g-import-not-at-top

  from hjepa_jax import data as data_lib  # pylint: disable=g-import-not-at-top

  where = dict(seed=exp.seed, batch_size=exp.global_batch, num_views=2 if exp.step_spec.views.enabled else 1)
  try:
    if reader.data.pipeline == "device":
      it = data_lib.make_device_iterator(reader.data, **where)
    else:
      it = data_lib.make_pretrain_iterator(reader.data, **where)
    jax.block_until_ready(next(it))  # start-up: loading, tf.data warm-up or the augmentation's compile
  except DataError as e:
    return None, f"data not present: {str(e).split('. ')[0]}"
  start = time.perf_counter()
  for _ in range(batches):
    jax.block_until_ready(next(it))
  rate = batches * exp.global_batch / (time.perf_counter() - start)
  getattr(it, "close", lambda: None)()
  return rate, f"{reader.data.pipeline} pipeline, {batches} batches after the first"


def device_memory(plat):
  """(bytes the default device can hold, what that figure is): the device's limit, else the host's RAM."""
  limit = platform_lib.device_memory_stats().get("bytes_limit")
  if limit:
    return int(limit), f"{plat.backend} device bytes_limit"
  return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "host RAM (CPU or unified memory)"


def make_plan(config, *, hours=None, steps=3, input_batches=4, alternatives=True, plat=None):
  """Builds, compiles and times the run of `config` on this machine; `hours` (default: the config's
  time_budget_hours) is the budget checked, and over it the alternatives are predicted."""
  plat = plat or platform_lib.detect()
  n, data_note = epoch_size(config.data)
  exp, reader = experiment.prepare(config, plat, num_examples=n)
  step = stepbench.measure_step(reader, steps=steps, warmup=0, plat=plat, spec=exp.step_spec)  # 1st call untimed
  flops = model_flops(config, plat, n)
  rate, input_note = input_rate(reader, exp, input_batches) if input_batches else (None, "not timed")
  memory, memory_source = device_memory(plat)
  plan = Plan(
    config=config,
    exp=exp,
    num_examples=n,
    data_note=data_note,
    backend=plat.backend,
    chip=devices.chip_name(plat.backend, plat.device_kind),
    step=step,
    model_flops=flops,
    input_images_per_s=rate,
    input_note=input_note,
    budget_hours=hours if hours is not None else exp.time_budget_hours,
    device_memory_bytes=memory,
    device_memory_source=memory_source,
    measured_peak_bytes=platform_lib.peak_memory_mb() * 2**20,
  )
  if alternatives and plan.over_budget_s is not None and plan.over_budget_s > 0:
    plan.alternatives = fitting_alternatives(plan, plat)
  return plan


# ---------------------------------------------------------------------------------------------
# What would fit.
# ---------------------------------------------------------------------------------------------


def _override(config, flags):
  cfg = config.copy_and_resolve_references()
  with cfg.unlocked():
    cfg.update_from_flattened_dict(flags)
  return cfg


def _candidates(config):
  """(label, [{key: value}, ...] from the cheapest change to the largest) for each knob."""
  m, size = config.model, config.data.image_size
  patch = m.patch_size or (parse_variant(m.variant)["patch_size"] if m.variant else None)
  sizes = sorted({patch * max(4, round(size * f / patch)) for f in RESOLUTION_FRACTIONS} if patch else (), reverse=True)
  sizes = [s for s in sizes if s < size]
  out = [("lower resolution", [{"data.image_size": s} for s in sizes])]
  if m.variant and m.width is None and m.depth is None:
    name = m.variant.split("/")[0]
    cost = lambda v: VARIANTS[v][0] ** 2 * VARIANTS[v][1]  # noqa: E731  (width^2 x depth: the FLOP order)
    smaller = sorted((v for v in VARIANTS if cost(v) < cost(name)), key=cost, reverse=True)
    out.append(("smaller model", [{"model.variant": f"{v}/{patch}"} for v in smaller]))
  if patch:
    bigger = [p for p in range(patch + 1, size // 4 + 1) if size % p == 0]
    out.append(("larger patch", [{"model.patch_size": p} for p in bigger]))
  return out


def _flags(flags):
  return " ".join(f"--config.{k}={v}" for k, v in flags.items())


def fitting_alternatives(plan, plat):
  """[(label, flags, predicted total s, fits)]: fewer epochs (from the measured epoch), then per knob the
  first setting that fits (or the last one tried). A changed update's time is the measured step scaled by
  the ratio of the model FLOPs (`model_flops`): the same achieved FLOP/s, optimistic for smaller programs,
  whose utilisation is usually lower. The input pipeline keeps its measured images/s; none of these
  changes the number of updates."""
  budget = 3600 * plan.budget_hours
  out = []
  exp, cfg = plan.exp, plan.config
  epochs = max(0.1, math.floor((budget - plan.step["compile_s"]) / plan.epoch_s * 10) / 10)
  total = exp.steps_per_epoch * epochs * plan.step_s + plan.step["compile_s"]
  out.append(("fewer epochs", _flags({"total_epochs": epochs}), total, total <= budget))
  if not plan.model_flops:
    return out  # no cost model on this backend: nothing to scale by
  compute_s = plan.step["step_ms"] / 1e3
  for label, options in _candidates(cfg):
    tried = None
    for flags in options:
      try:
        flops = model_flops(_override(cfg, flags), plat, plan.num_examples)  # validated as a run would be
      except ConfigError:
        continue  # e.g. no mask block fits the smaller grid: not an option
      if not flops:
        continue
      total = exp.total_steps * plan.paced(compute_s * flops / plan.model_flops) + plan.step["compile_s"]
      tried = (label, _flags(flags), total, total <= budget)
      if tried[3]:
        break
    if tried:
      out.append(tried)
  return out


def chip_prediction(flops_per_step, total_steps, steps_per_epoch, chip_name, dtype, utilisation):
  """(epoch s, total s, lines) of `total_steps` updates of `flops_per_step` on a table chip at `utilisation`
  of its peak; None where the chip or its peak is unknown (the reason in lines)."""
  peak, chip, why = devices.peak_flops(chip_name, dtype)
  if peak is None:
    return None, None, [f"{chip_name}: {why}"]
  step_s = flops_per_step / (peak * utilisation)
  bound = flops_per_step / peak * total_steps
  lines = [
    f"{chip.name}: {peak / 1e12:.1f} TFLOP/s peak {dtype} ({chip.float32_basis}; {chip.source})",
    f"  at {utilisation:.0%} of peak: {flops_per_step / 1e9:.0f} GFLOP / {peak * utilisation / 1e12:.2f} TFLOP/s "
    f"= {step_s:.2f} s/step; {steps_per_epoch} steps/epoch = {_hms(steps_per_epoch * step_s)} per epoch; "
    f"{total_steps} steps = {_hms(total_steps * step_s)}",
    f"  even at 100% of peak (the bound): {_hms(bound / total_steps * steps_per_epoch)} per epoch, {_hms(bound)}",
  ]
  return steps_per_epoch * step_s, total_steps * step_s, lines


# ---------------------------------------------------------------------------------------------
# The report.
# ---------------------------------------------------------------------------------------------


def _loops(plan):
  return plan.exp.step_spec.grad_accum_steps > 1 or plan.config.model.remat != "none"


def _hms(seconds):
  if seconds < 60:
    return f"{max(seconds, 0):.2f} s"
  seconds = int(round(seconds))
  return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _gib(n):
  return "n/a" if n is None else f"{n / 2**30:.2f} GiB"


def report(plan, *, chip=None, utilisation=PLANNING_UTILISATION):
  """The plan as printed lines; `chip` (a devices.CHIPS name, e.g. "M1 Max") adds the FLOP-count prediction."""
  exp, s, cfg = plan.exp, plan.step, plan.config
  enc = exp.step_spec.model.encoder
  peak, _, why = devices.peak_flops(plan.chip, cfg.model.dtype)
  mfu = devices.mfu(plan.model_flops, s["step_ms"] / 1e3, peak)
  gflop = (plan.model_flops or math.nan) / 1e9
  epochs = exp.total_steps / exp.steps_per_epoch
  lines = [
    f"device: {plan.backend} ({plan.chip})",
    f"run: {enc.width}w x {enc.depth}d, patch {enc.patch_size}, {cfg.data.image_size} px, {s['params']:,} params, "
    f"dtype {cfg.model.dtype}, remat {cfg.model.remat}",
    f"images per epoch: {plan.num_examples:,} ({plan.data_note})",
    f"steps: {exp.steps_per_epoch} per epoch x {epochs:g} epochs = {exp.total_steps} at {exp.global_batch} images "
    f"per update ({exp.micro_batch} x {exp.step_spec.grad_accum_steps})",
    f"compiled update: {(plan.flops or math.nan) / 1e9:.1f} GFLOP (XLA cost analysis), compile {s['compile_s']:.1f} s"
    + ("; a scanned loop's body (accumulation, remat) counted once" if _loops(plan) else ""),
    f"model FLOPs: {gflop:.1f} GFLOP per update, {gflop / exp.global_batch:.2f} per image",
    f"measured step: {s['step_ms'] / 1e3:.3f} s (median of {s['timed_steps']}, synthetic input) = "
    f"{s['images_per_s']:.1f} images/s; MFU " + (f"{mfu:.1%}" if mfu is not None else f"n/a ({why})"),
    "input pipeline: "
    + (f"{plan.input_images_per_s:.1f} images/s ({plan.input_note})" if plan.input_images_per_s else plan.input_note),
    f"predicted: {plan.step_s:.3f} s per update, {_hms(plan.epoch_s)} per epoch, {_hms(plan.total_s())} in all "
    "(compile included; evaluations and checkpoints not)",
    f"memory: XLA buffers of the update {_gib(plan.predicted_memory_bytes)} (temporaries {_gib(s.get('xla_temp_bytes'))})"
    f"; measured peak {_gib(plan.measured_peak_bytes)}; the device has {_gib(plan.device_memory_bytes)} "
    f"({plan.device_memory_source})",
  ]
  if plan.predicted_memory_bytes and plan.predicted_memory_bytes > plan.device_memory_bytes:
    lines.append("MEMORY: the update's buffers exceed the device's memory; see README 'Fallback plans'")
  over = plan.over_budget_s
  if over is not None:
    budget = f"the {plan.budget_hours:g} h budget"
    if over > 0:
      lines.append(
        f"DOES NOT FIT {budget}: predicted {_hms(plan.total_s())}, {_hms(over)} over "
        f"({plan.total_s() / 3600 / plan.budget_hours:.2f}x). What would fit, each alone:"
      )
      if not plan.alternatives:
        lines.append("  nothing tried fits (the compile alone may exceed the budget)")
      for label, flags, total, fits in plan.alternatives:
        lines.append(f"  {label}: {flags} -> {_hms(total)}" + ("" if fits else " (still over: the smallest tried)"))
    else:
      lines.append(f"fits {budget}: predicted {_hms(plan.total_s())}, {_hms(-over)} to spare")
  if chip:
    remat = "; remat's recomputation not counted" if cfg.model.remat != "none" else ""
    lines.append(f"on another chip, from the model FLOPs{remat}:")
    pred = chip_prediction(plan.model_flops, exp.total_steps, exp.steps_per_epoch, chip, cfg.model.dtype, utilisation)
    lines += ["  " + x for x in pred[2]]
  return lines


# ---------------------------------------------------------------------------------------------
# The same check inside a real run.
# ---------------------------------------------------------------------------------------------


class BudgetWatch:
  """The run's predicted end from its own timed steps; warns once when that is beyond `budget_hours`.

  Call `update(step, now)` at each log step. The first call only sets the clock (its steps include the
  compile); from the second on, the rate since then predicts the end, and the first prediction beyond
  `start_time + budget_hours` returns the warning text (None otherwise, and always after it).
  """

  def __init__(self, total_steps, start_step, budget_hours, start_time, steps_per_epoch=None):
    self.total_steps, self.start_step, self.budget_hours = total_steps, start_step, budget_hours
    self.start_time, self.steps_per_epoch = start_time, steps_per_epoch
    self.predicted_end = None  # time.time() units, once known
    self._origin = None
    self._warned = False

  def update(self, step, now):
    if self._origin is None or step <= self._origin[0]:
      self._origin = self._origin or (step, now)
      return None
    step0, t0 = self._origin
    rate = (step - step0) / max(now - t0, 1e-9)
    self.predicted_end = now + (self.total_steps - step) / rate
    run_s = self.predicted_end - self.start_time
    if self._warned or self.budget_hours is None or run_s <= 3600 * self.budget_hours:
      return None
    self._warned = True
    over = run_s - 3600 * self.budget_hours
    fit = ""
    if self.steps_per_epoch:
      left = 3600 * self.budget_hours - (now - self.start_time)
      epochs = (step + max(left, 0) * rate) / self.steps_per_epoch
      fit = f"; about {epochs:.1f} epochs fit (--config.total_epochs)"
    return (
      f"time budget: at {rate:.3g} steps/s the run ends at {time.strftime('%Y-%m-%d %H:%M', time.localtime(self.predicted_end))}"
      f", {_hms(run_s)} after its start: {_hms(over)} over time_budget_hours={self.budget_hours:g}{fit}; "
      "launch/plan.py lists what would fit"
    )
