"""Figures of runs: panels of images and maps, overlaid training curves (matplotlib, Agg backend).

matplotlib is imported on first use with the Agg backend, so importing this module needs neither a
display nor jax nor TensorFlow (launch/compare_runs.py stays quick).
"""

import numpy as np


def _pyplot():
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  return plt


def save_panels(
  path, rows, row_labels=None, col_labels=None, title=None, cmap="viridis", row_scale=True, marks=None, size=1.6
):
  """Saves a grid of panels: RGB(A) images (uint8 or [0, 1] floats, H x W x 3) or 2-D maps.

  Maps in one row share a colour scale (row_scale=True; each has its own colour bar otherwise)
  and NaN shows as grey. `marks[(r, c)] = (row, col)` draws a star on a map's cell.
  """
  plt = _pyplot()
  nr, nc = len(rows), max(len(r) for r in rows)
  fig, axes = plt.subplots(
    nr, nc, figsize=(size * nc + 0.8, size * nr + (0.5 if title else 0.2)), squeeze=False, layout="constrained"
  )
  colormap = plt.get_cmap(cmap).copy()
  colormap.set_bad("0.8")
  for r, row in enumerate(rows):
    maps = [np.asarray(p, np.float64) for p in row if p is not None and np.ndim(p) == 2]
    finite = np.concatenate([m[np.isfinite(m)] for m in maps]) if maps else np.zeros(0)
    vmin, vmax = (finite.min(), finite.max()) if row_scale and finite.size else (None, None)
    for c in range(nc):
      ax = axes[r, c]
      ax.set_xticks([])
      ax.set_yticks([])
      for side in ax.spines.values():
        side.set_visible(False)
      panel = row[c] if c < len(row) else None
      if panel is None:
        continue
      panel = np.asarray(panel)
      if panel.ndim == 2:
        im = ax.imshow(np.ma.masked_invalid(panel), cmap=colormap, vmin=vmin, vmax=vmax, interpolation="nearest")
        if not row_scale:
          fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03).ax.tick_params(labelsize=6)
        elif c == len(row) - 1:  # one bar for the row, beside it, so no panel shrinks
          fig.colorbar(im, ax=list(axes[r]), fraction=0.02, pad=0.01).ax.tick_params(labelsize=6)
      else:
        ax.imshow(panel, interpolation="nearest")
      if marks and (r, c) in marks:
        y, x = marks[(r, c)]
        ax.plot(x, y, marker="*", color="white", markersize=9, markeredgecolor="black")
      if col_labels and r == 0 and c < len(col_labels):
        ax.set_title(col_labels[c], fontsize=7)
      if row_labels and c == 0:
        ax.set_ylabel(row_labels[r], fontsize=7)
  if title:
    fig.suptitle(title, fontsize=9)
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def plot_curves(runs, tags, path, title=None, smooth=0):
  """One subplot per tag with every run overlaid; runs = {name: events.read_scalars(...) dict}.

  Tags that no run has are skipped; returns the tags drawn (nothing is written when none).
  """
  tags = [t for t in tags if any(t in s and len(s[t][0]) for s in runs.values())]
  if not tags:
    return []
  plt = _pyplot()
  nc = min(3, len(tags))
  nr = -(-len(tags) // nc)
  fig, axes = plt.subplots(nr, nc, figsize=(4.2 * nc, 2.9 * nr), squeeze=False)
  for ax, tag in zip(axes.ravel(), tags):
    for name, scalars in runs.items():
      if tag not in scalars:
        continue
      steps, values = scalars[tag]
      if smooth > 1 and len(values) > smooth:
        values = np.convolve(values, np.ones(smooth) / smooth, mode="valid")
        steps = steps[smooth - 1 :]
      ax.plot(steps, values, marker="o" if len(values) < 20 else None, markersize=3, label=name)
    ax.set_title(tag, fontsize=9)
    ax.set_xlabel("step", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    if len(runs) > 1:
      ax.legend(fontsize=7)
  for ax in axes.ravel()[len(tags) :]:
    ax.set_visible(False)
  if title:
    fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return tags
