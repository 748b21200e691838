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
  """One subplot per tag with every run overlaid, each run in one colour in every panel; runs = {name:
  events.read_scalars(...) dict}.

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
    for i, (name, scalars) in enumerate(runs.items()):
      if tag not in scalars:
        continue
      steps, values = scalars[tag]
      if smooth > 1 and len(values) > smooth:
        values = np.convolve(values, np.ones(smooth) / smooth, mode="valid")
        steps = steps[smooth - 1 :]
      marker = "o" if len(values) < 20 else None
      ax.plot(steps, values, marker=marker, markersize=3, label=name, color=f"C{i % 10}")  # a run's colour everywhere
    ax.set_title(tag, fontsize=9)
    ax.set_xlabel("step", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    if len(runs) > 1:
      ax.legend(fontsize=7)
  for ax in axes.ravel()[len(tags) :]:
    ax.set_visible(False)
  _save(plt, fig, path, title)
  return tags


def plot_intervals(panels, path, title=None, ylabel=None):
  """One subplot per panel: labelled estimates with 95% intervals, their samples as faint dots, a zero line.

  panels = [(panel title, [{"label", "mean", "ci": (lo, hi) or None, "points": [...], "significant"}, ...]), ...];
  a filled marker is an interval that excludes 0, a hollow one does not (or has none). Always writes `path`.
  """
  panels = list(panels) or [("nothing to plot", [])]
  plt = _pyplot()
  nc = len(panels)
  fig, axes = plt.subplots(1, nc, figsize=(max(3.2, 1.1 * max((len(r) for _, r in panels), default=1) + 1.6) * nc, 3.4))
  axes = np.atleast_1d(axes)
  rng = np.random.default_rng(0)  # the dots' horizontal jitter: the same figure every time
  for ax, (name, rows) in zip(axes, panels):
    ax.axhline(0.0, color="0.3", linewidth=0.8, zorder=1)
    for x, row in enumerate(rows):
      points = np.asarray(row.get("points") or [], np.float64)
      if points.size:
        ax.scatter(x + rng.uniform(-0.12, 0.12, points.size), points, s=12, color="C0", alpha=0.3, zorder=2)
      if row.get("mean") is None:
        continue
      ci = row.get("ci")
      yerr = None if ci is None else [[row["mean"] - ci[0]], [ci[1] - row["mean"]]]
      face = "C3" if row.get("significant") else "white"
      ax.errorbar(x, row["mean"], yerr=yerr, fmt="o", color="C3", mfc=face, capsize=4, markersize=6, zorder=3)
      if ci is None:
        ax.annotate("no interval", (x, row["mean"]), textcoords="offset points", xytext=(6, 4), fontsize=7)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([r["label"] for r in rows], fontsize=8, rotation=20 if len(rows) > 3 else 0)
    ax.set_xlim(-0.6, max(len(rows), 1) - 0.4)
    ax.set_title(name, fontsize=9)
    ax.tick_params(axis="y", labelsize=7)
    ax.grid(axis="y", alpha=0.3)
    if ylabel:
      ax.set_ylabel(ylabel, fontsize=8)
    if not rows:
      ax.text(0.5, 0.5, "no variant to compare", ha="center", va="center", transform=ax.transAxes, fontsize=8)
  _save(plt, fig, path, title)
  return path


def _save(plt, fig, path, title=None):
  """The figure's title, tight layout and PNG at 110 dpi, then closed (pyplot keeps every open figure)."""
  if title:
    fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
