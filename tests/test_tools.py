"""Run tools: visualize.py, compare_runs.py, monitor.py on one smoke run; the hjepa_jax.tools helpers.

One short training run serves the whole module; it starts in the background when the module does,
so the unit tests (first in the file) run while it trains.
"""

import datetime
import os
import re
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hjepa_jax import experiment
from hjepa_jax.model.hjepa import normalize_images
from hjepa_jax.tools import events, maps, monitor, overlay
from hjepa_jax.train_step import loss_fn
from tests._core import core_config, synthetic_images
from tests._smoke import SMOKE_LOG_EVERY, SMOKE_STEPS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCH = os.path.join(ROOT, "launch")
TOTAL = SMOKE_STEPS  # the shared smoke run (tests/_smoke.py) these tools read
ENV = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1", MPLBACKEND="Agg")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _tool(script, *args, timeout=300):
  proc = subprocess.run(
    [sys.executable, os.path.join(LAUNCH, script), *args],
    env=ENV,
    capture_output=True,
    text=True,
    timeout=timeout,
    cwd=ROOT,
  )
  return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def run_dir(smoke_run):
  return smoke_run


def _log_line(step, loss=0.5, feat=0.7, grad=0.3, minute=0, total=100):
  return (
    f"2026-01-01 10:{minute:02d}:00,000 INFO step {step}/{total} | epoch {step / 10:.2f}/{total / 10:.1f} | "
    f"loss {loss:.4f} | lr 0.001 | grad_norm {grad:.3g} | feat_std {feat:.3f} | 64.0 img/s | 1.00 steps/s | "
    "ETA 0:01:30"
  )


def _write_log(directory, lines):
  os.makedirs(os.path.join(directory, "logs"), exist_ok=True)
  with open(os.path.join(directory, "logs", "training.log"), "w") as f:
    f.write("\n".join(lines) + "\n")
  return directory


# ---------------------------------------------------------------------------------------------
# Monitoring rules on synthetic logs.
# ---------------------------------------------------------------------------------------------


def test_monitor_alerts_fire_on_bad_metrics(tmp_path):
  lines = [_log_line(10 * (i + 1), loss=0.5 + 0.1 * i, minute=i) for i in range(9)]
  lines.append(_log_line(100, loss=1.5, feat=0.03, grad=80.0, minute=9))
  bad = _write_log(str(tmp_path / "bad"), lines)
  code, out = _tool("monitor.py", bad, "--epoch_budget_min=0")
  assert code == 2, out
  assert "CRITICAL: feature std 0.030 < 0.05" in out and "CRITICAL: grad norm 80 > 50" in out, out
  assert "WARNING: loss rising" in out, out

  alerts = lambda log, **kw: [str(a) for a in monitor.check(log, **kw)]
  mild = monitor.parse_log("\n".join([_log_line(10, feat=0.08, grad=7.0)]))
  assert any(a.startswith("WARNING: feature std") for a in alerts(mild))
  assert any(a.startswith("WARNING: grad norm") for a in alerts(mild))
  healthy = monitor.parse_log("\n".join(_log_line(10 * (i + 1), loss=1.0 - 0.05 * i, minute=i) for i in range(8)))
  assert alerts(healthy) == []
  slow = alerts(healthy, epoch_budget_min=0.1)  # 10 steps/epoch at 1 step/s
  assert any("min/epoch is over the 0.1 min budget" in a for a in slow), slow
  later = datetime.datetime(2026, 1, 1, 11, 0)
  assert any("no log line for 53 min" in a for a in alerts(healthy, now=later))


def test_parse_log_states():
  start = "2026-01-01 09:59:00,000 INFO initialised a new run: 1,000 params"
  plan = "2026-01-01 09:59:00,000 INFO 100 steps: 10 per epoch at 64 images per update (64 x 1 accumulation)"
  ev = "2026-01-01 10:05:00,000 INFO eval at step 50: eval/knn_top1_k1 0.2500, eval/knn_top1_k20 0.3000"
  done = "2026-01-01 10:09:00,000 INFO training finished at step 100"
  log = monitor.parse_log("\n".join([start, plan, _log_line(50), ev, _log_line(100, minute=9), done]))
  assert (
    log.state == "finished"
    and log.steps_per_epoch == 10
    and log.evals == [(50, {"eval/knn_top1_k1": 0.25, "eval/knn_top1_k20": 0.3})]
  )
  assert "finished at step 100" in monitor.status_line(log, "r")
  resumed = monitor.parse_log(
    "\n".join(
      [
        start,
        _log_line(10),
        done,
        "2026-01-01 11:00:00,000 INFO resumed from x at step 100",
        _log_line(110, total=200),
        "2026-01-01 11:00:0",
      ]
    )
  )
  assert resumed.state == "running" and resumed.last.step == 110  # half-written last line ignored
  failed = monitor.parse_log(_log_line(10) + "\n2026-01-01 10:01:00,000 ERROR loss or gradients were NaN/Inf")
  assert failed.state == "failed" and str(monitor.check(failed)[0]).startswith("CRITICAL: run failed")
  nan = monitor.parse_log(_log_line(10).replace("loss 0.5000", "loss nan"))
  assert any("loss is nan" in str(a) for a in monitor.check(nan))


def test_monitor_and_compare_import_neither_tensorflow_nor_jax():
  # They run beside a busy training process: seconds of TF/jax start-up and their memory would be felt.
  code = (
    "import runpy, sys\nfor s in ('monitor.py', 'compare_runs.py'): runpy.run_path(f'launch/{s}')\n"
    "print(sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'jax'}))"
  )
  proc = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=120, cwd=ROOT)
  assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stdout + proc.stderr


# ---------------------------------------------------------------------------------------------
# Visual helpers.
# ---------------------------------------------------------------------------------------------


def test_mask_overlay_tints_targets_keeps_context_darkens_dropped():
  grid, p = (4, 4), 2
  images = np.random.RandomState(0).randint(0, 256, (1, 8, 8, 3)).astype(np.uint8)
  masks = {
    "context_idx": np.array([[0, 1, 2, 0]]),
    "context_valid": np.array([[True, True, True, False]]),
    "target_idx": np.array([[[5, 6], [15, 15]]]),
    "target_valid": np.array([[[True, True], [True, False]]]),
  }
  labels = overlay.patch_labels(masks, grid)[0]
  assert labels.ravel().tolist() == [0, 0, 0, -1, -1, 1, 1, -1, -1, -1, -1, -1, -1, -1, -1, 2]
  out = overlay.mask_overlay(images, masks, grid)
  assert out.shape == images.shape and out.dtype == np.uint8
  patch = lambda x, i: x[0, (i // 4) * p : (i // 4 + 1) * p, (i % 4) * p : (i % 4 + 1) * p].astype(np.float32)
  for i in (0, 1, 2):  # context: untouched
    np.testing.assert_array_equal(patch(out, i), patch(images, i))
  for i, colour in ((5, overlay.TARGET_COLOURS[0]), (6, overlay.TARGET_COLOURS[0]), (15, overlay.TARGET_COLOURS[1])):
    np.testing.assert_allclose(patch(out, i), 0.45 * patch(images, i) + 0.55 * colour, atol=0.51)
  np.testing.assert_allclose(patch(out, 3), 0.3 * patch(images, 3), atol=0.51)  # dropped: darkened


TINY = {"data.image_size": 16, "model.width": 16, "model.predictor.width": 8, "model.predictor.num_heads": 1}


@pytest.fixture(scope="module")
def tiny():
  model = experiment.model(core_config(**TINY))
  params = model.init(jax.random.PRNGKey(0))
  return model, params, synthetic_images(3, size=16)


def test_attention_maps_match_the_encoder(tiny):
  model, params, images = tiny
  n = 16
  w = maps.attention_weights(model, params["encoder"], images, blocks=(0, -1))
  assert w.shape == (3, 2, 2, n, n)
  np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-5)
  # The recomputed weights reproduce the block's own attention output (proj of weights @ v).
  capture = jax.jit(
    lambda p, x: model.encoder.apply(
      {"params": p},
      normalize_images(x),
      mutable=["intermediates"],
      capture_intermediates=lambda mdl, _: mdl.name in ("qkv", "proj"),
    )
  )
  _, st = capture(params["encoder"], images)
  block = st["intermediates"]["transformer"]["block_1"]
  v = jnp.split(block["qkv"]["__call__"][0].reshape(3, n, 6, 8), 3, axis=2)[2]
  proj = params["encoder"]["transformer"]["block_1"]["proj"]
  y = jnp.einsum("bhts,bshd->bthd", w[:, 1], v).reshape(3, n, 16) @ proj["kernel"] + proj["bias"]
  np.testing.assert_allclose(y, block["proj"]["__call__"][0], atol=1e-4)

  received = maps.attention_maps(w, model.grid, heads=(1,))
  assert received.shape == (3, 2, 1, 4, 4)
  np.testing.assert_allclose(received.sum((-2, -1)), 1.0, atol=1e-5)
  query = maps.attention_maps(w, model.grid, query=(1, 2))
  np.testing.assert_allclose(query.reshape(3, 2, 2, n), w[..., 6, :])
  with pytest.raises(ValueError, match="heads"):
    maps.attention_maps(w, model.grid, heads=(2,))
  with pytest.raises(ValueError, match="block"):
    maps.attention_weights(model, params["encoder"], images, blocks=(2,))


def test_pca_rgb_shapes_and_range(tiny):
  model, params, images = tiny
  feats = maps.patch_features(model, params["encoder"], images)
  assert feats.shape == (3, 16, 16)
  for shared in (True, False):
    rgb = maps.pca_rgb(feats, model.grid, shared=shared)
    assert rgb.shape == (3, 4, 4, 3) and rgb.min() >= 0 and rgb.max() <= 1 and rgb.std() > 0.05
  np.testing.assert_array_equal(maps.pca_rgb(feats, model.grid), maps.pca_rgb(feats.copy(), model.grid))


def test_prediction_errors_match_the_loss(tiny):
  model, params, images = tiny
  # Hand-made masks on the 4x4 grid (sample_masks' compile is not what is tested): two 2x2 targets each.
  blocks = [[[0, 1, 4, 5], [10, 11, 14, 15]], [[5, 6, 9, 10], [2, 3, 6, 7]], [[8, 9, 12, 13], [8, 9, 12, 13]]]
  target_idx = np.array(blocks, np.int32)
  target_valid = np.ones_like(target_idx, bool)
  target_valid[2, 1, 2:] = False  # a padded block
  context = [[p for p in range(16) if p not in sum(b, [])][:6] for b in blocks]
  masks = {
    "context_idx": np.array(context, np.int32),
    "context_valid": np.ones((3, 6), bool),
    "target_idx": target_idx,
    "target_valid": target_valid,
  }
  error_maps, per_level = maps.prediction_errors(model, params, params["encoder"], images, masks, 2)
  assert error_maps.shape == (2, 3, 4, 4) and per_level.shape == (2, 3)
  spec = experiment.step_spec(
    core_config(**TINY, **{"mask.num_targets": 2, "mask.target_scale": (0.25, 0.25), "mask.min_context": 2}),
    total_steps=10,
    warmup_steps=1,
  )
  _, aux = jax.jit(lambda *a: loss_fn(spec, *a))(params, params["encoder"], normalize_images(images), masks)
  np.testing.assert_allclose(per_level.mean(1), aux["loss_levels"], rtol=1e-5)  # what training logs
  in_target = overlay.patch_labels(masks, model.grid) > 0
  np.testing.assert_array_equal(np.isfinite(error_maps[0]), in_target)  # level 0: exactly the target patches
  np.testing.assert_array_equal(np.isfinite(error_maps[1][2]), [[0, 0, 0, 0]] * 2 + [[1, 1, 0, 0]] * 2)  # 2x2 cells


# ---------------------------------------------------------------------------------------------
# The tools on a real run.
# ---------------------------------------------------------------------------------------------


def test_visualize_writes_figures_and_report(visualized_smoke_run):
  """launch/visualize.py on a copy of the smoke run (run in the background: it writes into the run directory)."""
  code, out, run_dir = visualized_smoke_run
  assert code == 0, out[-3000:]
  vis = os.path.join(run_dir, "visualizations")
  page = open(os.path.join(vis, "report.html")).read()
  referenced = re.findall(r"src='([^']+\.png)'", page)
  expected = {"masks.png", "attention_received.png", "attention_query.png", "pca.png", "errors.png", "curves.png"}
  assert expected <= set(referenced), referenced
  for name in referenced:
    with open(os.path.join(vis, name), "rb") as f:
      data = f.read()
    assert data.startswith(PNG_MAGIC) and len(data) > 2000, name
  assert "mean error, these images" in page and "eval/knn_top1_k20" in page  # error table, last eval


def test_compare_runs_table_and_curves(run_dir, tmp_path):
  other = str(tmp_path / "other")
  os.makedirs(os.path.join(other, "evaluation"))
  for name in os.listdir(run_dir):
    if name.startswith("events.out.tfevents."):
      shutil.copy(os.path.join(run_dir, name), other)
  with open(os.path.join(other, "evaluation", "results.json"), "w") as f:
    f.write('{"step": 12, "metrics": {"avgpool": {"knn_top1_k20": 0.5, "knn_top1_k20_ci95": 0.1}}}')
  out_dir = str(tmp_path / "cmp")
  code, out = _tool("compare_runs.py", run_dir, other, f"--output={out_dir}")
  assert code == 0, out[-3000:]
  table = open(os.path.join(out_dir, "comparison.md")).read()
  header = next(l for l in table.splitlines() if l.startswith("| metric |"))
  assert header.count("|") == 4, header  # metric + two runs
  loss_row = next(l for l in table.splitlines() if l.startswith("| train/loss |"))
  cells = [c.strip() for c in loss_row.split("|")[2:4]]
  assert cells[0] == cells[1] and float(cells[0]) > 0, loss_row  # same events, same last value
  assert re.search(r"\| evaluate/avgpool/knn_top1_k20 \|\s*\| 0\.5 \|", table), table
  assert "ci95" not in table and "eval/knn_top1_k20" in table
  assert "| metric |" in out
  with open(os.path.join(out_dir, "curves.png"), "rb") as f:
    assert f.read().startswith(PNG_MAGIC)


def test_monitor_finished_and_running(run_dir, tmp_path):
  code, out = _tool("monitor.py", run_dir)
  assert code == 0, out
  assert f"finished at step {TOTAL}" in out and f"step {TOTAL}/{TOTAL}" in out and f"eval@{TOTAL} knn_top1_k20" in out

  lines = open(os.path.join(run_dir, "logs", "training.log")).read().splitlines()
  cut = [i for i, l in enumerate(lines) if "| loss " in l][1]  # stop after the second progress line
  live = _write_log(str(tmp_path / "live"), lines[: cut + 1])
  code, out = _tool("monitor.py", live)
  assert code == 0, out
  assert (
    "live: running" in out and f"step {2 * SMOKE_LOG_EVERY}/{TOTAL}" in out and "ETA" in out and "mem n/a" in out
  ), out


def test_events_match_training_log(run_dir):
  log = monitor.read_log(run_dir)
  scalars = events.read_scalars(run_dir)
  steps, values = scalars["train/loss"]
  assert list(steps) == [r.step for r in log.records] == list(range(SMOKE_LOG_EVERY, TOTAL + 1, SMOKE_LOG_EVERY))
  np.testing.assert_allclose(values, [r.loss for r in log.records], atol=6e-5)
  assert log.steps_per_epoch and log.last_eval[0] == TOTAL
  assert abs(log.last_eval[1]["eval/knn_top1_k20"] - events.last_values(scalars)["eval/knn_top1_k20"]) < 1e-4
