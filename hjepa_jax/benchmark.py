"""The accelerator check's pieces (launch/benchmark.py runs them): what it measures, MFU, the report, the data pack.

Cells: every model x compute dtype x attention path x remat policy, each the H-JEPA update as a config file plus
overrides builds it (hjepa_jax.experiment), measured by hjepa_jax.stepbench in a process of its own. MFU uses the
model FLOPs (XLA's count of the einsum or XLA-attention step without remat, before its passes: the same work
whatever the attention kernel or remat policy) over the chip's dense peak (hjepa_jax.devices).
A CIFAR-10 subset travels as one or more .npz files of lossless WebP mosaics (`pack_cifar10`) and is unpacked
as the python-pickle layout that hjepa_jax.data.sources reads (`unpack_cifar10`). No TensorFlow or jax import
at module level.
"""

import ast
import io
import json
import math
import os
import pickle
import statistics
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
  # The official I-JEPA step's setup on CPU (BENCHMARKS.md, issue 11): ViT-Ti/16 at 224 px, batch 32, a 192-wide
  # 6-block predictor, one level; the reference runs the same model (reference_args).
  "ti16_224": (
    "ViT-Ti/16, 224 px, I-JEPA's setup",
    "configs/conservative.py:model=Ti/16,local",
    {
      "data.batch_size": 32,
      "model.layerscale": False,
      "model.predictor.width": 192,
      "model.predictor.depth": 6,
      "model.predictor.num_heads": 3,
      "model.predictor.layout": "per_block",  # I-JEPA's (the schema's default is joint)
      "loss.num_hierarchies": 1,
      "loss.hierarchy_weights": (1.0,),
    },
  ),
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
LAYOUTS = ("per_block", "joint")  # model.predictor.layout; a cell without one keeps its recipe's
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


def plan_cells(models, dtypes, attentions, remats, layouts=(None,), one_at_a_time=False):
  """The cells, most informative first: remat, then dtype, then attention, then layout, then model, in flag order.

  Every combination; or, `one_at_a_time`, the first value of each list (the base) and every cell that changes one
  of them, which is what the speed rows compare (a feature's cost beside the base) at a fraction of the grid."""
  layouts = tuple(layouts) or (None,)
  cells = []
  for remat in remats:
    for dtype in dtypes:
      for attention in attentions:
        for layout in layouts:
          for model in models:
            cell = dict(model=model, dtype=dtype, attention=attention, remat=remat)
            if layout is not None:
              cell["layout"] = layout
            cells.append(cell)
  if one_at_a_time:
    base = (dtypes[0], attentions[0], remats[0], layouts[0])
    cells = [c for c in cells if sum(a != b for a, b in zip(_settings(c), base)) <= 1]
  return cells


# What a cell sets besides its model, in plan order (hjepa_jax.buys compares cells that differ in one of them).
CELL_SETTINGS = ("dtype", "attention", "remat", "layout")


def _settings(cell):
  return tuple(cell.get(k) for k in CELL_SETTINGS)


def cell_config(cell, overrides):
  """(config file, overrides) of a cell: its model's recipe, then `overrides` (all cells), then the cell's settings."""
  _, config, model_overrides = MODELS[cell["model"]]
  own = {"model.dtype": cell["dtype"], "model.remat": cell["remat"], **ATTENTION[cell["attention"]]}
  if cell.get("layout"):
    own["model.predictor.layout"] = cell["layout"]
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
  layout = f"/{cell['layout']}" if cell.get("layout") else ""
  return f"{cell['model']}/{cell['dtype']}/{cell['attention']}/{cell['remat']}{layout}"


def cell_summary(cell):
  if cell.get("status") != "ok":
    return f"{cell.get('status')}: {cell.get('error') or cell.get('reason')}"
  return f"compile {cell['compile_s']:.1f} s, {cell['step_ms']:.1f} ms/step, {cell['images_per_s']:.0f} img/s"


def add_mfu(cells):
  """Model FLOPs per model (the lowered einsum/xla step without remat) and MFU of every measured cell.

  A predictor layout is other work (joint attends once per image), so a cell with one counts its own: the key
  is then MODEL/LAYOUT."""
  flops, einsum_ms = {}, {}
  for cell in sorted(cells, key=lambda c: c["attention"] != "einsum"):
    if cell.get("status") == "ok" and cell["attention"] == "einsum":
      einsum_ms[(cell["model"], cell["dtype"], cell["remat"], cell.get("layout"))] = cell["step_ms"]
    ok = cell.get("status") == "ok" and cell["remat"] == "none" and cell["attention"] != "cudnn"
    # Where the backend has no cost model of the lowered step (jax 0.11's CUDA plugin), the compiled one of the
    # same cell: without remat or a cuDNN custom call it is the same work, give or take XLA's rewrites.
    count, basis = cell.get("flops_lowered"), "lowered"
    if not count:
      count, basis = cell.get("flops_per_step"), "compiled"
    if ok and count:
      flops.setdefault(_work(cell), {"flops": count, "from": cell_name(cell), "count": basis})
  for cell in cells:
    if cell.get("status") != "ok":
      continue
    model = flops.get(_work(cell))
    peak, chip, reason = devices.peak_flops(cell["device"]["chip"], cell["dtype"])
    cell["model_flops_per_step"] = model and model["flops"]
    cell["peak_flops"] = peak
    basis = "dense bf16" if cell["dtype"] == "bfloat16" else chip and f"float32 as {chip.float32_basis}"
    cell["peak_source"] = chip and f"{chip.name}, {basis}: {chip.source}"
    cell["mfu"] = devices.mfu(cell["model_flops_per_step"], cell["step_ms"] / 1e3, peak)
    cell.pop("mfu_reason", None)
    if cell["mfu"] is None:
      cell["mfu_reason"] = reason or "no einsum/xla cell without remat of this model measured its model FLOPs"
    base = einsum_ms.get((cell["model"], cell["dtype"], cell["remat"], cell.get("layout")))
    cell["speedup_vs_einsum"] = base and base / cell["step_ms"]
  return flops


def _compiled_counts(bench):
  return any(m.get("count") == "compiled" for m in (bench.get("model_flops") or {}).values())


def _work(cell):
  return f"{cell['model']}/{cell['layout']}" if cell.get("layout") else cell["model"]


# ---------------------------------------------------------------------------------------------
# Rounds: the same cells measured again, interleaved, so a noisy machine's drift hits every cell alike.
# ---------------------------------------------------------------------------------------------

ROUND_FIELDS = ("step_ms", "peak_memory_mib", "compile_s")


def merge_rounds(rounds):
  """Cells measured in several rounds (a list of cell lists, one per round, same order) -> one list.

  Each cell keeps the first round's fields, with the median of every round for the step time (images/s
  follows from it) and peak memory, and the per-round values under "rounds"; a cell that failed in any round
  keeps that round's status and error."""
  merged = []
  for versions in zip(*rounds):
    cell = dict(versions[0])
    bad = next((v for v in versions if v.get("status") != "ok"), None)
    if bad is not None:
      cell.update({k: bad[k] for k in ("status", "error", "reason") if k in bad})
    elif len(versions) > 1:
      cell["rounds"] = {k: [v.get(k) for v in versions] for k in ROUND_FIELDS}
      for key in ROUND_FIELDS:
        values = [v[key] for v in versions if v.get(key) is not None]
        cell[key] = statistics.median(values) if values else None
      cell["images_per_s"] = cell["batch"] / (cell["step_ms"] / 1e3)
    merged.append(cell)
  return merged


# ---------------------------------------------------------------------------------------------
# Beside the official I-JEPA step: ijepa_ref_bench.py (the facebookresearch/ijepa modules on synthetic images),
# run by hjepa_jax/tools/peak_run.py for its peak memory, in whichever Python has torch.
# ---------------------------------------------------------------------------------------------

# (width, depth) -> the reference's model function (its predictor takes the encoder's head count).
REFERENCE_MODELS = {
  (192, 12): "vit_tiny",
  (384, 12): "vit_small",
  (768, 12): "vit_base",
  (1024, 24): "vit_large",
  (1280, 32): "vit_huge",
}
REFERENCE_MIN_GRID = 14  # its MaskCollator loops forever on an 8x8 grid; 14x14 (224 px / 16) is the tested one
# What the reference's MaskCollator draws: 4 targets, target scale and aspect, context scale.
REFERENCE_MASKS = {
  "num_targets": 4,
  "target_scale": (0.15, 0.2),
  "target_aspect": (0.75, 1.5),
  "context_scale": (0.85, 1.0),
}
PEAK_RUN = os.path.join(ROOT, "hjepa_jax", "tools", "peak_run.py")


def reference_args(cfg):
  """The reference step's flags for the model of `cfg`, and what still differs between the two steps.

  Returns (args, notes); args is None where the reference cannot run this model (the notes say why). The notes
  name every setting of ours the reference lacks (more hierarchy levels, LayerScale, view-level losses, other
  masks...), so a ratio is never read as like-for-like when it is not."""
  from hjepa_jax import experiment  # pylint: disable=g-import-not-at-top

  dims = experiment.encoder_dims(cfg.model)
  name = REFERENCE_MODELS.get((dims["width"], dims["depth"]))
  grid = cfg.data.image_size // dims["patch_size"]
  if name is None:
    return None, [f"the reference has no ViT {dims['width']} wide and {dims['depth']} deep"]
  if grid < REFERENCE_MIN_GRID:
    return None, [
      f"a {grid}x{grid} patch grid: the reference's MaskCollator is only known to work from 14x14 (it loops forever on "
      "8x8)"
    ]
  p = cfg.model.predictor
  args = {
    "model": name,
    "patch": dims["patch_size"],
    "img": cfg.data.image_size,
    "batch": cfg.data.batch_size * cfg.optim.grad_accum_steps,
    "pred_depth": p.depth,
    "pred_dim": p.width,
    "bf16": cfg.model.dtype == "bfloat16",
  }
  notes = []
  if cfg.loss.num_hierarchies != 1:
    notes.append(f"ours predicts {cfg.loss.num_hierarchies} hierarchy levels (the reference: 1)")
  if p.num_heads != dims["num_heads"]:
    notes.append(f"our predictor has {p.num_heads} heads (the reference's: the encoder's {dims['num_heads']})")
  if note := layout_note(p.layout):
    notes.append(note)
  on = [k for k in ("layerscale", "rope") if cfg.model[k]] + (["fpn"] if cfg.model.fpn.enabled else [])
  on += [f"loss.{k}" for k in ("contrastive", "vicreg", "sigreg") if cfg.loss[k].weight]
  if on:
    notes.append(f"ours has {', '.join(on)} on (the reference: off)")
  masks = {k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in cfg.mask.items() if k in REFERENCE_MASKS}
  other = sorted(k for k, v in REFERENCE_MASKS.items() if masks.get(k) != v)
  if other:
    notes.append(f"our mask.{', mask.'.join(other)} differ from the reference's MaskCollator")
  return args, notes


_LAYOUT_NOTE = "our predictor layout is "


def layout_note(layout):
  """What a predictor layout changes against the reference's step (I-JEPA's per_block), or None."""
  if layout in (None, "per_block"):
    return None
  return f"{_LAYOUT_NOTE}{layout} (the reference's: one sequence per target block)"


def cell_notes(model_notes, layout):
  """What differs between a cell and the reference: its model's notes (reference_args of the model's recipe),
  with the cell's own predictor layout, where it sets one, in place of the recipe's."""
  if not layout:
    return list(model_notes)
  return [n for n in model_notes if not n.startswith(_LAYOUT_NOTE)] + [n for n in [layout_note(layout)] if n]


def reference_command(python, script, args, warmup, steps, threads=0):
  """The command that runs the reference step under peak_run.py (by path: the reference's Python may lack ours)."""
  cmd = [python, PEAK_RUN, script]
  for key, value in args.items():
    if key == "bf16":
      cmd += ["--bf16"] if value else []
    else:
      cmd += [f"--{key}", str(value)]
  cmd += ["--warmup", str(warmup), "--steps", str(steps)]
  return cmd + (["--threads", str(threads)] if threads else [])


def parse_reference_output(text):
  """The reference's JSON line and peak_run's, from its output -> a result dict (status ok), or an error."""
  found = {}
  for line in text.splitlines():
    line = line.strip()
    if line.startswith("{"):
      try:
        found.update(json.loads(line))
      except ValueError:
        continue
  if "img_per_s" not in found or "peak_run" not in found:
    tail = text.strip().splitlines()[-1:] or ["no output"]
    return {"status": "error", "error": f"the reference printed no result: {tail[0]}"}
  peak = found.pop("peak_run")
  memory = peak.get("cuda_peak_mib") or peak.get("peak_rss_mib")
  step_ms = found["step_ms_median"]
  return {**found, "status": "ok", "step_ms": step_ms, "images_per_s": found["batch"] / (step_ms / 1e3),
          "peak_memory_mib": memory, "peak_run": peak}  # fmt: skip


def add_reference_ratios(cells, references):
  """Each measured cell's images/s and peak memory as multiples of its model's reference step."""
  for cell in cells:
    ref = references.get(cell["model"]) or {}
    if cell.get("status") == "ok" and ref.get("status") == "ok":
      cell["vs_reference"] = cell["images_per_s"] / ref["images_per_s"]
      cell["memory_vs_reference"] = cell["peak_memory_mib"] / ref["peak_memory_mib"]


# ---------------------------------------------------------------------------------------------
# CIFAR-10 subset: pack here, unpack there as the python-pickle layout hjepa_jax.data.sources reads.
# ---------------------------------------------------------------------------------------------


# Images per lossless WebP mosaic (rows x columns of 32 px images: 640 x 800 px, inside WebP's 16,383 px limit).
# Lossless WebP keeps 0.55 of CIFAR-10's raw size, against 0.78 for zlib over row differences and 0.70 for PNG.
MOSAIC = (20, 25)


def parse_part(text):
  """'I/N' -> (I, N), 1 <= I <= N: which of N equal slices of the chosen images a pack file holds."""
  try:
    i, n = (int(x) for x in text.split("/"))
  except ValueError:
    i = n = 0
  if not 1 <= i <= n:
    raise ValueError(f"pack part {text!r}: expected I/N with 1 <= I <= N, e.g. 1/2")
  return i, n


def _encode_mosaics(images):
  """uint8 (N, H, W, 3) -> [lossless WebP bytes as uint8 arrays], MOSAIC images each (the last zero-padded)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  rows, cols = MOSAIC
  per, (h, w) = rows * cols, images.shape[1:3]
  mosaics = []
  for start in range(0, len(images), per):
    chunk = images[start : start + per]
    chunk = np.concatenate([chunk, np.zeros((per - len(chunk), *chunk.shape[1:]), np.uint8)])
    grid = chunk.reshape(rows, cols, h, w, 3).transpose(0, 2, 1, 3, 4).reshape(rows * h, cols * w, 3)
    buf = io.BytesIO()
    Image.fromarray(grid).save(buf, "WEBP", lossless=True, quality=100, method=4)
    mosaics.append(np.frombuffer(buf.getvalue(), np.uint8))
  return mosaics


def _decode_mosaics(mosaics, count, size):
  """The inverse of _encode_mosaics: the first `count` images of the mosaics."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  rows, cols = MOSAIC
  h, w = size
  grids = [np.asarray(Image.open(io.BytesIO(m.tobytes())).convert("RGB")) for m in mosaics]
  images = [g.reshape(rows, h, cols, w, 3).transpose(0, 2, 1, 3, 4).reshape(rows * cols, h, w, 3) for g in grids]
  return np.concatenate(images)[:count] if images else np.zeros((0, h, w, 3), np.uint8)


def pack_cifar10(path, source_dir, n_train, n_test, seed=0, part=(1, 1)):
  """Writes a seeded random subset of a cifar-10-batches-py folder to `path` (.npz of lossless WebP mosaics).

  `part=(I, N)` keeps the I-th of N equal slices of each split's subset, so a set over the carry limit travels
  as N files (each under it) that `unpack_cifar10` joins; a count of 0 leaves that split out of the file."""
  from hjepa_jax.data.archives import load_cifar10  # pylint: disable=g-import-not-at-top

  i, n_parts = part
  arrays, sizes = {}, {}
  for split, n in (("train", n_train), ("test", n_test)):
    if n <= 0:
      continue
    images, labels = load_cifar10(Path(source_dir), split)
    idx = np.sort(np.random.default_rng(seed).permutation(len(labels))[:n])
    idx = np.array_split(idx, n_parts)[i - 1]
    for k, mosaic in enumerate(_encode_mosaics(images[idx])):
      arrays[f"{split}_mosaic_{k:05d}"] = mosaic
    arrays[f"{split}_labels"] = labels[idx].astype(np.uint8)
    arrays[f"{split}_size"] = np.array(images.shape[1:3])
    sizes[split] = len(idx)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  np.savez(path, **arrays)  # WebP is compressed already
  return sizes


def _read_pack(path):
  """{split: (images, labels)} of one pack file."""
  splits = {}
  with np.load(path) as packed:
    for split in ("train", "test"):
      if f"{split}_labels" not in packed:
        continue
      labels = packed[f"{split}_labels"]
      mosaics = [packed[k] for k in sorted(k for k in packed.files if k.startswith(f"{split}_mosaic_"))]
      splits[split] = (_decode_mosaics(mosaics, len(labels), tuple(packed[f"{split}_size"])), labels)
  return splits


def unpack_cifar10(paths, dest):
  """--pack files (one path or several, joined in order) as a cifar-10-batches-py folder at `dest`.

  data_batch_1..5 share the train images, test_batch holds the test images; both splits must be present."""
  paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
  parts = [_read_pack(p) for p in paths]
  splits = {}
  for split in ("train", "test"):
    have = [p[split] for p in parts if split in p]
    if not have:
      raise ValueError(
        f"the packs {[str(p) for p in paths]} hold no {split} images: add the pack file that has them"
        f" (launch/benchmark.py --pack writes them; --pack_{split}=0 leaves a split out)"
      )
    splits[split] = (np.concatenate([im for im, _ in have]), np.concatenate([lb for _, lb in have]))
  os.makedirs(dest, exist_ok=True)
  train_parts = np.array_split(np.arange(len(splits["train"][1])), 5)
  files = [(f"data_batch_{i + 1}", "train", part) for i, part in enumerate(train_parts)]
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


def _reference_lines(references):
  if not references:
    return []
  lines = [
    "",
    "The official I-JEPA step (facebookresearch/ijepa's modules, ijepa_ref_bench.py) on the same machine:",
    "",
    "| model | reference flags | step (ms) | images/s | peak memory (MiB) | what still differs | status |",
    "|:---|:---|---:|---:|---:|:---|:---|",
  ]
  for model, ref in references.items():
    flags = " ".join(f"{k}={v}" for k, v in (ref.get("args") or {}).items())
    status = "ok" if ref.get("status") == "ok" else f"{ref.get('status')}: {ref.get('error') or ref.get('reason')}"
    lines.append(
      f"| {MODELS[model][0]} | {flags or '-'} | {_num(ref.get('step_ms'), '.1f')} | {_num(ref.get('images_per_s'), '.1f')} "
      f"| {_num(ref.get('peak_memory_mib'), '.0f')} | {'; '.join(ref.get('notes') or []) or 'nothing'} | {status} |"
    )
  return lines


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
      "the model FLOPs (the einsum step without remat, before XLA's passes"
      + (", or compiled where the backend gives no count before them" if _compiled_counts(bench) else "")
      + ") over the chip's dense peak.",
      "",
      "| model | batch | dtype | attention | remat | layout | compile (s) | step (ms) | images/s | vs einsum "
      "| vs reference | peak memory (MiB) | memory vs reference | GFLOP/step | MFU | status |",
      "|:---|---:|:---|:---|:---|:---|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---|",
    ]
    order = {name: i for i, name in enumerate(ATTENTION)}
    key = lambda c: (c["model"], c["dtype"], c["remat"], c.get("layout") or "", order[c["attention"]])  # noqa: E731
    for c in sorted(bench["cells"], key=key):
      status = "ok" if c.get("status") == "ok" else f"{c.get('status')}: {c.get('error') or c.get('reason')}"
      lines.append(
        f"| {MODELS[c['model']][0]} | {c.get('batch', '')} | {c['dtype']} | {c['attention']} | {c['remat']} | "
        f"{c.get('layout') or 'recipe'} | {_num(c.get('compile_s'), '.1f')} | {_num(c.get('step_ms'), '.2f')} | "
        f"{_num(c.get('images_per_s'), '.0f')} | {_num(c.get('speedup_vs_einsum'), '.2f')} | "
        f"{_num(c.get('vs_reference'), '.2f')} | {_num(c.get('peak_memory_mib'), '.0f')} | "
        f"{_num(c.get('memory_vs_reference'), '.2f')} | {_num((c.get('flops_per_step') or math.nan) / 1e9, '.1f')} | "
        f"{_num(c.get('mfu'), '.1%')} | {status} |"
      )
    if bench.get("rounds", 1) > 1:
      lines += ["", f"Step time and peak memory: the median of {bench['rounds']} interleaved rounds (per-round values in "
                "the JSON)."]  # fmt: skip
    lines += _reference_lines(bench.get("reference") or {})
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
        f"{timing['step_ms']:.1f} ms at batch {timing['batch']} on one reused batch, "
        f"{_num(timing.get('step_ms_fresh'), '.1f')} ms on a new batch each step; {timing['params']:,} params; budget "
        f"{train['budget_s']:.0f} s -> {train['planned_steps']} steps."
      )
    if "steps" in train:
      sps = train["last_metrics"].get("train/steps_per_sec")
      lines.append(
        f"Trained {train['steps']} steps in {train['train_wall_s']:.0f} s (start, compile and checkpoint included); "
        f"last window {_num(sps, '.2f')} steps/s, loss {_num(train['last_metrics'].get('train/loss'), '.4f')}."
      )
      plan_ms = timing.get("plan_ms") or timing.get("step_ms")
      if sps and plan_ms:
        lines.append(f"Real batches ran at {sps * plan_ms / 1e3:.2f}x the planned step's rate.")
      if train.get("stopped"):
        lines.append(f"Stopped {train['stopped']}; the evaluation below is of step {train['steps']}.")
    lines.append("")
    for name, ev in (train.get("eval") or {}).items():
      if "error" in ev:
        lines += [f"Evaluation of the {name} encoder failed: {ev['error']}", ""]
    if train.get("eval_table"):
      lines += ["### k-NN and linear probe (trained vs random init)", "", train["eval_table"]]
  return "\n".join(lines).rstrip() + "\n"
