"""Figures of one run: masks, attention, PCA of patch features, per-level prediction error, curves.

    python launch/visualize.py --workdir=results/conservative [--step=N | --best] [--num_images=8] \
        [--blocks=-1] [--heads=0,1]

Writes WORKDIR/visualizations/*.png and report.html (open it in a browser). Images are the first
--num_images of the run's eval test split (the fixed subset load_labelled draws); masks are drawn
with the run's own mask config.
"""

import html
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags, logging  # noqa: E402

from hjepa_jax import platform  # noqa: E402

_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory of launch/main.py (config.json, checkpoints/).")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the newest).")
_BEST = flags.DEFINE_bool("best", False, "Use WORKDIR/best/ (the best checkpoint by the run's best_metric).")
_NUM_IMAGES = flags.DEFINE_integer("num_images", 8, "Eval images to draw.")
_BLOCKS = flags.DEFINE_list("blocks", ["-1"], "Encoder blocks whose attention to draw (negative: from the end).")
_HEADS = flags.DEFINE_list("heads", ["0", "1"], "Attention heads to draw, or 'all'.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the drawn masks.")
_OUTPUT = flags.DEFINE_string("output", None, "Output directory (default: WORKDIR/visualizations).")
flags.mark_flag_as_required("workdir")

CURVE_TAGS = (
  "train/loss",
  "train/loss_level_0",
  "train/loss_level_1",
  "train/loss_level_2",
  "train/loss_level_3",
  "train/feature_variance",
  "train/feature_variance_target",
  "train/grad_norm",
  "train/lr",
  "train/ema_momentum",
  "train/images_per_sec",
  "eval/knn_top1_k1",
  "eval/knn_top1_k20",
  "eval/effective_rank",
  "eval/feature_std",
)


def _heads(values, num_heads):
  if [v.strip() for v in values] == ["all"]:
    return tuple(range(num_heads))
  heads = tuple(int(v) for v in values)
  bad = [h for h in heads if not 0 <= h < num_heads]
  if bad:
    raise ValueError(f"--heads={','.join(values)}: the encoder has {num_heads} heads (0..{num_heads - 1})")
  return heads


def visualize(workdir, *, step=None, best=False, num_images=8, blocks=(-1,), heads=("0", "1"), seed=0, output=None):
  """Writes the figures and report.html of `workdir`; returns the report's path."""
  import jax  # pylint: disable=g-import-not-at-top

  from hjepa_jax import checkpoint as ckpt_lib  # pylint: disable=g-import-not-at-top
  from hjepa_jax import data as data_lib
  from hjepa_jax.masks import sample_masks
  from hjepa_jax import experiment
  from hjepa_jax.evaluation.runner import load_run_config
  from hjepa_jax.tools import events, figures, maps, overlay

  cfg = load_run_config(workdir)
  out = output or os.path.join(workdir, "visualizations")
  os.makedirs(out, exist_ok=True)
  model = experiment.model(cfg)
  grid, enc = model.grid, model.encoder
  blocks = tuple(int(b) for b in blocks)
  for b in blocks:
    if not -enc.depth <= b < enc.depth:
      raise ValueError(
        f"--blocks: block {b} does not exist; the encoder has {enc.depth} blocks (0..{enc.depth - 1}, -1 = last)"
      )
  heads = _heads(heads, enc.num_heads)
  step, state = ckpt_lib.restore_for_eval(workdir, step, best)
  images, labels = data_lib.load_labelled(
    cfg.data.eval_dataset, cfg.data.eval_split_test, cfg.data, image_size=model.image_size, max_examples=num_images
  )
  images, labels = images[:num_images], labels[:num_images]
  masks = jax.device_get(
    sample_masks(
      jax.random.PRNGKey(seed),
      len(images),
      experiment.mask_spec(cfg.mask, grid, cfg.data.batch_size * cfg.optim.grad_accum_steps),
    )
  )
  cols = [f"#{i} (label {int(y)})" for i, y in enumerate(labels)]
  shown = []  # (file, heading, caption)

  def save(name, rows, row_labels, heading, caption, **kw):
    figures.save_panels(os.path.join(out, name), rows, row_labels, cols, **kw)
    shown.append((name, heading, caption))

  overlaid = overlay.mask_overlay(images, masks, grid)
  n_ctx = masks["context_valid"].sum(-1)
  save(
    "masks.png",
    [list(images), list(overlaid)],
    ["image", "masks"],
    "Masks",
    f"Context patches unchanged, the {cfg.mask.num_targets} target blocks tinted one colour each, patches in "
    f"neither darkened. Context tokens per image: {', '.join(str(int(c)) for c in n_ctx)} of "
    f"{grid[0] * grid[1]}.",
  )

  weights = maps.attention_weights(model, state["target"], images, blocks)
  centre = (grid[0] // 2, grid[1] // 2)
  received = maps.attention_maps(weights, grid, heads)
  from_centre = maps.attention_maps(weights, grid, heads, query=centre)
  names = [f"block {b % enc.depth} head {h}" for b in blocks for h in heads]
  flat = lambda m: [list(m[:, i, j]) for i in range(m.shape[1]) for j in range(m.shape[2])]
  save(
    "attention_received.png",
    [list(images)] + flat(received),
    ["image"] + names,
    "Attention received",
    "Target encoder, full image: mean attention each patch receives over all query patches (one colour "
    "scale per row; uniform attention is 1/N = {:.4f}).".format(1 / (grid[0] * grid[1])),
  )
  marks = {(r, c): centre for r in range(1, len(names) + 1) for c in range(len(images))}
  save(
    "attention_query.png",
    [list(images)] + flat(from_centre),
    ["image"] + names,
    "Attention from the centre",
    f"Where the patch at row {centre[0]}, column {centre[1]} (star) attends.",
    marks=marks,
  )

  feats = maps.patch_features(model, state["target"], images)
  save(
    "pca.png",
    [list(images), list(maps.pca_rgb(feats, grid, True)), list(maps.pca_rgb(feats, grid, False))],
    ["image", "PCA (shared)", "PCA (per image)"],
    "PCA of patch features",
    "Top-3 principal components of the target encoder's patch features as RGB: fitted on all shown images "
    "together (equal colours = similar features across images), then on each image alone.",
  )

  # The maps pool level 0's own predictions: the pooled design's levels. The deep and multiscale designs' levels
  # >= 1 predict other targets (hjepa_jax/levels.py), so only their level 0 is drawn.
  pooled = cfg.loss.hierarchy == "pooled"
  levels = int(cfg.loss.num_hierarchies) if pooled else 1
  error_maps, per_level = maps.prediction_errors(
    model, state["params"], state["target"], images, masks, levels, cfg.loss.type
  )
  scalars = events.read_scalars(workdir)
  logged = events.last_values(scalars)
  save(
    "errors.png",
    [list(overlaid)] + [list(m) for m in error_maps],
    ["masks"] + [f"level {k} ({2**k}x{2**k})" for k in range(levels)],
    "Prediction error per level",
    f"{cfg.loss.type} error of the predictor against the layer-normalised target features, per target patch "
    "(level 0) and per pooled cell (level k, painted over the whole cell); grey: no target there. One colour "
    "scale per level."
    + (
      "" if pooled else f" Level 0 only: the levels >= 1 of loss.hierarchy={cfg.loss.hierarchy} predict other targets."
    ),
  )
  error_rows = [(k, float(per_level[k].mean()), logged.get(f"train/loss_level_{k}")) for k in range(levels)]

  if figures.plot_curves(
    {os.path.basename(os.path.abspath(workdir)): scalars}, CURVE_TAGS, os.path.join(out, "curves.png")
  ):
    shown.append(("curves.png", "Training curves", "Scalars from the run's TensorBoard event files."))

  path = os.path.join(out, "report.html")
  _write_html(path, workdir, step, best, cfg, model, shown, error_rows, logged)
  return path


def _write_html(path, workdir, step, best, cfg, model, figures, error_rows, logged):
  e = html.escape
  enc = model.encoder
  rows = "".join(
    f"<tr><td>{k}</td><td>{mean:.4f}</td><td>{'' if last is None else f'{last:.4f}'}</td></tr>"
    for k, mean, last in error_rows
  )
  evals = "".join(
    f"<tr><td>{e(k)}</td><td>{v:.4g}</td></tr>" for k, v in sorted(logged.items()) if k.startswith("eval/")
  )
  parts = [
    "<!doctype html><html><head><meta charset='utf-8'><title>H-JEPA run "
    + e(os.path.basename(workdir))
    + "</title><style>body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em}"
    "img{max-width:100%;border:1px solid #ddd}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}</style></head><body>",
    f"<h1>{e(os.path.abspath(workdir))}</h1>",
    f"<p>{'best' if best else 'checkpoints'}/{step}; encoder width {enc.width}, depth {enc.depth}, "
    f"{enc.num_heads} heads, patch {enc.patch_size}, grid {model.grid[0]}x{model.grid[1]}; images from "
    f"{e(str(cfg.data.eval_dataset))}[{e(str(cfg.data.eval_split_test))}].</p>",
  ]
  for name, heading, caption in figures:
    parts.append(f"<h2>{e(heading)}</h2><p>{e(caption)}</p><img src='{e(name)}' alt='{e(heading)}'>")
    if name == "errors.png":
      parts.append(
        "<table><tr><th>level</th><th>mean error, these images</th><th>last logged "
        f"train/loss_level_k</th></tr>{rows}</table>"
      )
  if evals:
    parts.append(f"<h2>Last evaluation (event files)</h2><table>{evals}</table>")
  parts.append("</body></html>")
  with open(path, "w") as f:
    f.write("\n".join(parts) + "\n")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  platform.hide_gpus_from_tensorflow()
  from hjepa_jax.data import DataError  # noqa: E402  (after TF is kept off the GPU)

  try:
    path = visualize(
      _WORKDIR.value,
      step=_STEP.value,
      best=_BEST.value,
      num_images=_NUM_IMAGES.value,
      blocks=_BLOCKS.value,
      heads=_HEADS.value,
      seed=_SEED.value,
      output=_OUTPUT.value,
    )
  except (DataError, FileNotFoundError, ValueError) as e:
    logging.error("%s", e)
    sys.exit(f"error: {e}")
  print(f"wrote {path}")


if __name__ == "__main__":
  app.run(main)
