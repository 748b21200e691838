"""The accelerator check's pieces (launch/benchmark.py runs them): what it measures, MFU, the report, the data pack.

Cells: every model x compute dtype x attention path x remat policy, each the H-JEPA update as a config file plus
overrides builds it (hjepa_jax.experiment), measured by hjepa_jax.stepbench in a process of its own. MFU uses the
model FLOPs (XLA's count of the einsum or XLA-attention step without remat, before its passes: the same work
whatever the attention kernel or remat policy) over the chip's dense peak (hjepa_jax.devices).
A CIFAR-10 subset travels as one compressed .npz (`pack_cifar10`) and is unpacked as the python-pickle layout
that hjepa_jax.data.sources reads (`unpack_cifar10`). No TensorFlow or jax import at module level.
"""

import ast
import math
import os
import pickle
from pathlib import Path

import numpy as np

from hjepa_jax import devices
from hjepa_jax.config import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name -> (title, config file[:arg], overrides). The config holds the recipe; the cells vary dtype, attention, remat.
MODELS = {
  "ti4_32": (
    "ViT-Ti/4, 32 px",
    "configs/conservative.py:model=Ti/4,local",
    {"data.image_size": 32, "data.batch_size": 256},
  ),
  "s16_224": ("ViT-S/16, 224 px", "configs/conservative.py:model=S/16,local", {"data.batch_size": 128}),
  "tiny": (
    "tiny (32 wide, 1 block, patch 4), 32 px",
    "configs/smoke.py",
    {
      "model.width": 32,
      "model.depth": 1,
      "model.num_heads": 2,
      "model.predictor.width": 16,
      "model.predictor.depth": 1,
      "data.batch_size": 16,
    },
  ),
}
ATTENTION = {
  "einsum": {"model.fused_attention": False},
  "xla": {"model.fused_attention": True, "model.attention_impl": "xla"},
  "cudnn": {"model.fused_attention": True, "model.attention_impl": "cudnn"},
}
# The training recipe's model: ViT-Ti/4 with a narrow 4-block predictor, bfloat16, batch 256.
TRAIN_SET = (
  "model.width=192",
  "model.depth=12",
  "model.num_heads=3",
  "model.patch_size=4",
  "model.predictor.width=192",
  "model.predictor.depth=4",
  "model.predictor.num_heads=3",
  "model.dtype=bfloat16",
  "data.batch_size=256",
)

# The tiny cells' model; xla attention as in the "xla" cell, so the step timed first compiles the same program.
TINY_TRAIN_SET = (*(f"{k}={v}" for k, v in MODELS["tiny"][2].items()), "model.attention_impl=xla")


# ---------------------------------------------------------------------------------------------
# Config: a file (path[:arg], relative to the repository) plus KEY=VALUE overrides.
# ---------------------------------------------------------------------------------------------


def parse_overrides(items):
  """["model.depth=2", "model.variant=Ti/4", "loss.hierarchy_weights=(1.0, 0.5)"] -> {key: python value}."""
  out = {}
  for item in items:
    key, sep, text = item.partition("=")
    if not sep:
      raise ValueError(f"override {item!r} is not KEY=VALUE")
    try:
      out[key.strip()] = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
      out[key.strip()] = text.strip()  # a bare string: model.dtype=bfloat16
  return out


def build_config(config, overrides):
  """`config` ("configs/x.py[:arg]", relative to the repository) with dotted-key overrides applied."""
  path, _, arg = config.partition(":")
  cfg = load_config(os.path.join(ROOT, path), arg or None)
  cfg.update_from_flattened_dict({k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()})
  return cfg


# ---------------------------------------------------------------------------------------------
# Cells and MFU.
# ---------------------------------------------------------------------------------------------


def plan_cells(models, dtypes, attentions, remats):
  """Every combination, most informative first: remat, then dtype, then attention, then model, in flag order."""
  cells = []
  for remat in remats:
    for dtype in dtypes:
      for attention in attentions:
        for model in models:
          cells.append(dict(model=model, dtype=dtype, attention=attention, remat=remat))
  return cells


def cell_config(cell, overrides):
  """(config file, overrides) of a cell: its model's recipe, then `overrides` (all cells), then the cell's settings."""
  _, config, model_overrides = MODELS[cell["model"]]
  own = {"model.dtype": cell["dtype"], "model.remat": cell["remat"], **ATTENTION[cell["attention"]]}
  return config, {**model_overrides, **overrides, **own}


def skip_reason(cell, backend):
  """Why a cell is not run here (None: run it); `backend` is None until a first cell has reported it."""
  if cell["attention"] == "cudnn":
    if backend is not None and backend not in ("cuda", "gpu"):
      return f"cuDNN attention runs on CUDA only (backend here: {backend})"
    if cell["dtype"] != "bfloat16":
      return "cuDNN flash attention takes float16/bfloat16 inputs only"
  return None


def cell_name(cell):
  return f"{cell['model']}/{cell['dtype']}/{cell['attention']}/{cell['remat']}"


def cell_summary(cell):
  if cell.get("status") != "ok":
    return f"{cell.get('status')}: {cell.get('error') or cell.get('reason')}"
  return f"compile {cell['compile_s']:.1f} s, {cell['step_ms']:.1f} ms/step, {cell['images_per_s']:.0f} img/s"


def add_mfu(cells):
  """Model FLOPs per model (the lowered einsum/xla step without remat) and MFU of every measured cell."""
  flops, einsum_ms = {}, {}
  for cell in sorted(cells, key=lambda c: c["attention"] != "einsum"):
    if cell.get("status") == "ok" and cell["attention"] == "einsum":
      einsum_ms[(cell["model"], cell["dtype"], cell["remat"])] = cell["step_ms"]
    ok = cell.get("status") == "ok" and cell["remat"] == "none" and cell["attention"] != "cudnn"
    if ok and cell.get("flops_lowered"):
      flops.setdefault(cell["model"], {"flops": cell["flops_lowered"], "from": cell_name(cell)})
  for cell in cells:
    if cell.get("status") != "ok":
      continue
    model = flops.get(cell["model"])
    peak, chip, reason = devices.peak_flops(cell["device"]["chip"], cell["dtype"])
    cell["model_flops_per_step"] = model and model["flops"]
    cell["peak_flops"] = peak
    basis = "dense bf16" if cell["dtype"] == "bfloat16" else chip and f"float32 as {chip.float32_basis}"
    cell["peak_source"] = chip and f"{chip.name}, {basis}: {chip.source}"
    cell["mfu"] = devices.mfu(cell["model_flops_per_step"], cell["step_ms"] / 1e3, peak)
    if cell["mfu"] is None:
      cell["mfu_reason"] = reason or "no einsum/xla cell without remat of this model measured its model FLOPs"
    base = einsum_ms.get((cell["model"], cell["dtype"], cell["remat"]))
    cell["speedup_vs_einsum"] = base and base / cell["step_ms"]
  return flops


# ---------------------------------------------------------------------------------------------
# CIFAR-10 subset: pack here, unpack there as the python-pickle layout hjepa_jax.data.sources reads.
# ---------------------------------------------------------------------------------------------


def pack_cifar10(path, source_dir, n_train, n_test, seed=0):
  """Writes a seeded random subset of a cifar-10-batches-py folder to `path` (.npz, row-delta coded)."""
  from hjepa_jax.data.sources import load_cifar10  # pylint: disable=g-import-not-at-top  (imports TensorFlow)

  arrays = {}
  for split, n in (("train", n_train), ("test", n_test)):
    images, labels = load_cifar10(Path(source_dir), split)
    idx = np.sort(np.random.default_rng(seed).permutation(len(labels))[:n])
    # Differences along each row: zlib keeps 0.78 of the raw size (0.92 for the pixels themselves).
    arrays[f"{split}_images"] = np.diff(images[idx], axis=2, prepend=np.uint8(0))
    arrays[f"{split}_labels"] = labels[idx].astype(np.uint8)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  np.savez_compressed(path, **arrays)
  return {split: len(arrays[f"{split}_labels"]) for split in ("train", "test")}


def unpack_cifar10(path, dest):
  """A --pack file as a cifar-10-batches-py folder at `dest`: data_batch_1..5 share the train images."""
  os.makedirs(dest, exist_ok=True)
  with np.load(path) as packed:
    splits = {
      s: (np.cumsum(packed[f"{s}_images"], axis=2, dtype=np.uint8), packed[f"{s}_labels"]) for s in ("train", "test")
    }
  parts = np.array_split(np.arange(len(splits["train"][1])), 5)
  files = [(f"data_batch_{i + 1}", "train", part) for i, part in enumerate(parts)]
  files.append(("test_batch", "test", np.arange(len(splits["test"][1]))))
  for name, split, idx in files:
    images, labels = splits[split]
    rows = images[idx].transpose(0, 3, 1, 2).reshape(len(idx), -1)  # channel-major rows, as the original files
    with open(os.path.join(dest, name), "wb") as f:
      pickle.dump({b"data": rows, b"labels": labels[idx].astype(int).tolist()}, f)
  return {split: len(splits[split][1]) for split in splits}


# ---------------------------------------------------------------------------------------------
# The report.
# ---------------------------------------------------------------------------------------------


def _num(value, fmt):
  return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else format(value, fmt)


def format_report(report):
  dev = report.get("device") or {}
  lines = [
    f"# hjepa-jax accelerator check, {report['started']}",
    "",
    f"Device: {dev.get('chip', '?')} (backend {dev.get('backend', '?')}, jax {dev.get('jax', '?')}); host "
    f"{report['host']['machine']}, {report['host']['cpus']} CPUs. Command: `{' '.join(report['command'])}`. "
    f"Wall time {report.get('wall_s', 0):.0f} s.",
    "",
  ]
  bench = report.get("bench")
  if bench:
    lines += [
      f"## Step micro-benchmarks ({bench['steps']} timed steps after {bench['warmup']} warm-up, median; "
      f"budget {bench['budget_s']:.0f} s)",
      "",
      f"Peak memory: {dev.get('peak_memory_source', '?')}. FLOPs: XLA cost analysis of the compiled step; MFU uses "
      "the model FLOPs (the einsum step without remat, before XLA's passes) over the chip's dense peak.",
      "",
      "| model | batch | dtype | attention | remat | compile (s) | step (ms) | images/s | vs einsum | peak memory (MiB) "
      "| GFLOP/step | MFU | status |",
      "|:---|---:|:---|:---|:---|---:|---:|---:|---:|---:|---:|---:|:---|",
    ]
    order = {name: i for i, name in enumerate(ATTENTION)}
    for c in sorted(bench["cells"], key=lambda c: (c["model"], c["dtype"], c["remat"], order[c["attention"]])):
      status = "ok" if c.get("status") == "ok" else f"{c.get('status')}: {c.get('error') or c.get('reason')}"
      lines.append(
        f"| {MODELS[c['model']][0]} | {c.get('batch', '')} | {c['dtype']} | {c['attention']} | {c['remat']} | "
        f"{_num(c.get('compile_s'), '.1f')} | {_num(c.get('step_ms'), '.2f')} | {_num(c.get('images_per_s'), '.0f')} | "
        f"{_num(c.get('speedup_vs_einsum'), '.2f')} | {_num(c.get('peak_memory_mib'), '.0f')} | "
        f"{_num((c.get('flops_per_step') or math.nan) / 1e9, '.1f')} | {_num(c.get('mfu'), '.1%')} | {status} |"
      )
    sources = sorted({c["peak_source"] for c in bench["cells"] if c.get("peak_source")})
    no_mfu = sorted({c["mfu_reason"] for c in bench["cells"] if c.get("mfu_reason")})
    lines += ["", *[f"Peak FLOP/s: {s}" for s in sources], *[f"No MFU: {r}" for r in no_mfu], ""]
  train = report.get("train")
  if train:
    lines += [f"## Training: `{train.get('config')}`", ""]
    if train.get("status") == "error":
      lines += [f"Failed: {train.get('error')}", ""]
    timing = train.get("timing") or {}
    if timing:
      lines.append(
        f"Overrides: {', '.join(f'`{k}={v}`' for k, v in train['overrides'].items()) or '-'}. Step (synthetic input): "
        f"{timing['step_ms']:.1f} ms at batch {timing['batch']}, {timing['params']:,} params; budget "
        f"{train['budget_s']:.0f} s -> {train['planned_steps']} steps."
      )
    if "steps" in train:
      sps = train["last_metrics"].get("train/steps_per_sec")
      lines.append(
        f"Trained {train['steps']} steps in {train['train_wall_s']:.0f} s (start, compile and checkpoint included); "
        f"last window {_num(sps, '.2f')} steps/s, loss {_num(train['last_metrics'].get('train/loss'), '.4f')}."
      )
    lines.append("")
    for name, ev in (train.get("eval") or {}).items():
      if "error" in ev:
        lines += [f"Evaluation of the {name} encoder failed: {ev['error']}", ""]
    if train.get("eval_table"):
      lines += ["### k-NN and linear probe (trained vs random init)", "", train["eval_table"]]
  return "\n".join(lines).rstrip() + "\n"
