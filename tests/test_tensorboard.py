"""TensorBoard as the seed guide uses it: parameter / gradient histograms, attention maps of fixed images at each
evaluation, and WORKDIR/report.md (written by training, rewritten by launch/report.py)."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from hjepa_jax import checkpoint, experiment, report, train, writers
from hjepa_jax.optim import make_optimizer
from hjepa_jax.tools.overlay import for_display, heat_overlay
from hjepa_jax.train_step import HISTOGRAM_BINS, init_state, leaf_names, make_train_step
from tests._core import tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2")


def _tensors(workdir):
  from tensorboard.backend.event_processing import event_accumulator

  events = event_accumulator.EventAccumulator(workdir, size_guidance={"tensors": 0})
  events.Reload()
  return events


def _histogram(events, tag):
  """[(step, float64 [bins, 3] (left, right, count))] of a histogram tag."""
  from tensorboard.util import tensor_util

  assert events.SummaryMetadata(tag).plugin_data.plugin_name == "histograms", tag
  return [(e.step, tensor_util.make_ndarray(e.tensor_proto)) for e in events.Tensors(tag)]


def _step_setup(**overrides):
  spec = experiment.step_spec(tiny_config(**overrides), 20, 0)
  rng = jax.random.PRNGKey(0)
  tx = make_optimizer(spec.optim, jax.eval_shape(spec.model.init, rng))
  return spec, tx, rng


def test_histograms_off_computes_nothing():
  """histogram_every_steps=0: no histogram output, no branch in the program; on: one lax.cond (a `case`) holding
  the binning. (That the on-program compiles once and bins every leaf: the run below.)"""
  spec, tx, rng = _step_setup()
  abstract = jax.eval_shape(lambda: init_state(spec.model, tx, rng))
  batch = {"image": jax.ShapeDtypeStruct((8, 24, 24, 3), np.uint8)}
  steps = [make_train_step(spec, tx, histogram_every=n) for n in (0, 2)]
  off, on = (jax.eval_shape(step, abstract, batch, rng)[1] for step in steps)
  assert "histograms" not in off
  assert set(on) - set(off) == {"histograms"}
  assert on["histograms"]["grads"]["counts"].shape == (
    len(jax.tree_util.tree_leaves(abstract["params"])),
    HISTOGRAM_BINS,
  )
  off, on = (jax.jit(step).lower(abstract, batch, rng).as_text() for step in steps)
  assert "stablehlo.case" not in off and "stablehlo.case" in on


@pytest.mark.parametrize("kind", ["event", "clu"])
def test_histograms_through_either_writer_read_back_by_tensorboard(tmp_path, kind):
  """Both writers write Histograms-tab summaries: plugin "histograms", [bins, 3] (left, right, count) rows."""
  if kind == "clu":
    pytest.importorskip("tensorflow")
    from clu import metric_writers

    writer = metric_writers.create_default_writer(str(tmp_path))
  else:
    writer = writers.EventWriter(str(tmp_path))
  counts = np.array([[1, 0, 3], [0, 0, 5]], np.int32)
  hist = {"counts": counts, "min": np.array([-1.0, 2.0]), "max": np.array([2.0, 2.0])}
  writers.write_histograms(writer, 7, {"grads": hist}, {"grads": ["a/kernel", "b/bias"]})
  writer.flush()
  writer.close()
  events = _tensors(str(tmp_path))
  ((step, a),) = _histogram(events, "grads/a/kernel")
  assert step == 7
  np.testing.assert_allclose(a, [[-1, 0, 1], [0, 1, 0], [1, 2, 3]])
  ((_, b),) = _histogram(events, "grads/b/bias")  # a constant leaf: zero-width buckets, all in the last
  np.testing.assert_allclose(b[:, :2], 2.0)
  assert b[:, 2].sum() == 5


def test_heat_overlay_brightest_where_the_map_peaks():
  images = np.full((1, 8, 8, 3), 128, np.uint8)
  maps = np.zeros((1, 2, 2), np.float32)
  maps[0, 1, 0] = 1.0
  out = heat_overlay(images, maps)
  assert out.shape == images.shape and out.dtype == np.uint8
  assert out[0, 4:, :4].sum() > out[0, :4, 4:].sum()  # the bottom-left patch is brightest


def test_small_images_are_shown_beside_their_overlay_and_enlarged():
  plain = np.arange(2 * 32 * 32 * 3, dtype=np.uint32).reshape(2, 32, 32, 3).astype(np.uint8)
  shown = for_display(plain + 1, plain)
  assert shown.shape == (2, 128, 256, 3)  # side by side, then 4x: the short side reaches 128 px
  assert (shown[:, ::4, :128:4] == plain).all() and (shown[:, ::4, 128::4] == plain + 1).all()
  assert for_display(np.zeros((1, 224, 224, 3), np.uint8)).shape == (1, 224, 224, 3)  # large enough: unchanged


@pytest.fixture(scope="module")
def tb_run(tmp_path_factory):
  """A 4-step in-process run: histograms every 2 steps, an evaluation every 2 steps with 2 attention images,
  conservative criteria; the images each attention map was drawn on are kept."""
  workdir = str(tmp_path_factory.mktemp("tb") / "run")
  drawn = []

  def spy(images, maps):
    drawn.append(np.array(images))
    return heat_overlay(images, maps)

  cfg = tiny_config(
    **{
      "total_steps": 4,
      "log_every_steps": 2,
      "histogram_every_steps": 2,
      "eval.every_steps": 2,
      "eval.max_examples": 60,
      "eval.knn_ks": (20,),
      "eval.attention_images": 2,
      "report.criteria": "conservative",
    }
  )
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(train, "heat_overlay", spy)
    train.train_and_evaluate(cfg, workdir)
  return workdir, cfg, drawn


def test_run_writes_histograms_of_every_leaf_at_every_nth_step(tb_run):
  workdir, cfg, _ = tb_run
  shapes = jax.eval_shape(experiment.model(cfg).init, jax.random.PRNGKey(0))
  names, sizes = leaf_names(shapes), [x.size for x in jax.tree_util.tree_leaves(shapes)]
  events = _tensors(workdir)
  tags = {t for t in events.Tags()["tensors"] if t.startswith(("params/", "grads/"))}
  assert tags == {f"{g}/{n}" for g in ("params", "grads") for n in names}
  for group in ("params", "grads"):
    for name, size in zip(names, sizes):
      written = _histogram(events, f"{group}/{name}")
      assert [s for s, _ in written] == [2, 4]
      assert all(h[:, 2].sum() == size for _, h in written), (group, name)
  assert "programs compiled: train_step 1" in open(os.path.join(workdir, "logs", "training.log")).read()
  # The step-4 parameter histograms span the saved step-4 parameters, leaf by leaf, min to max.
  params = jax.tree_util.tree_leaves(checkpoint.restore_for_eval(workdir)[1]["params"])
  for name, leaf in zip(names, params):
    (_, first), (_, last) = _histogram(events, f"params/{name}")
    np.testing.assert_allclose([last[0, 0], last[-1, 1]], [leaf.min(), leaf.max()], rtol=1e-6, err_msg=name)


def _attention_counts(workdir):
  """[(step, number of images)] of eval/attention (an image tensor holds width, height, then one PNG each)."""
  return [(e.step, len(e.tensor_proto.string_val) - 2) for e in _tensors(workdir).Tensors("eval/attention")]


def test_attention_maps_at_each_evaluation_on_the_same_images(tb_run, smoke_run):
  workdir, _, drawn = tb_run
  assert _attention_counts(workdir) == [(2, 2), (4, 2)]  # eval.attention_images=2
  assert len(drawn) == 2 and drawn[0].shape == (2, 24, 24, 3)
  np.testing.assert_array_equal(drawn[0], drawn[1])
  assert [n for _, n in _attention_counts(smoke_run)] == [4]  # the default, at the shared smoke run's one eval


def test_report_at_the_end_of_training_then_from_the_launcher_with_offline_results(tb_run, tmp_path):
  workdir, _, _ = tb_run
  text = open(os.path.join(workdir, "report.md")).read()
  for heading in ("## Summary", "## Training Details", "## Final Metrics", "## Success Criteria", "## Next Steps"):
    assert heading in text
  assert "| Minimum | No NaN/Inf losses at any point | ✅ | no update skipped |" in text
  loss = json.load(open(os.path.join(workdir, "summary.json")))["metrics"]["train/jepa_loss"]
  tick = "✅" if loss < 1.0 else "❌"
  assert f"| Minimum | Final loss <1.0 | {tick} | train/jepa_loss {loss:.4f} |" in text
  assert "| Minimum | Linear probe accuracy >55% | not measured |" in text
  assert "Compile time: " in text and "Hardware:** cpu" in text

  # The launcher on a copy with an offline evaluation beside it (the fields report.py reads from results.json).
  os.makedirs(os.path.join(workdir, "evaluation"), exist_ok=True)
  results = {"metrics": {"avgpool": {"knn_top1_k20": 0.52, "linear_probe_top1": 0.61, "feature_std": 0.2}}}
  with open(os.path.join(workdir, "evaluation", "results.json"), "w") as f:
    json.dump(results, f)
  launcher = os.path.join(ROOT, "launch", "report.py")
  done = subprocess.run(
    [sys.executable, launcher, f"--workdir={workdir}"], env=ENV, capture_output=True, text=True, timeout=120
  )
  assert done.returncode == 0, done.stderr[-2000:]
  text = open(done.stdout.strip()).read()
  assert "| Minimum | Linear probe accuracy >55% | ✅ | 61.0% |" in text
  assert "| Stretch | Linear probe accuracy >65% | ❌ | 61.0% |" in text
  assert "| Target | k-NN accuracy >50% | ✅ | 52.0% (offline evaluation) |" in text
  assert "- Final Performance: 61.0% linear probe" in text
  assert "Success: not judged (report.criteria=none)" in open(report.write_report(workdir, "none")).read()
  empty = subprocess.run([sys.executable, launcher, f"--workdir={tmp_path}"], env=ENV, capture_output=True, text=True)
  assert empty.returncode == 1 and "no summary.json" in empty.stderr and "Traceback" not in empty.stderr


def test_success_is_the_minimum_tier():
  row = lambda tier, status: (tier, "", status, "")  # noqa: E731
  assert report.success([row("Minimum", report.PASS), row("Target", report.FAIL)]) == "Yes"
  assert report.success([row("Minimum", report.PASS), row("Minimum", report.FAIL)]) == "No"
  assert report.success([row("Minimum", report.PASS), row("Minimum", report.UNKNOWN)]) == "undetermined"


def test_log_facts_sum_the_sessions_of_a_resumed_run():
  lines = [
    "2026-01-01 10:00:00,000 INFO workdir /w: checkpoints in checkpoints/, log in logs/training.log; watch ...",
    "2026-01-01 10:00:00,100 INFO backend gpu (NVIDIA H200) x 1 devices, 1 process(es)",
    "2026-01-01 10:00:30,000 INFO train_step compiled and ran step 1 in 25.0 s",
    "2026-01-01 11:00:00,000 INFO stopped by SIGINT at step 500; checkpoint saved. Run the same command to resume.",
    "2026-01-01 12:00:00,000 INFO workdir /w: checkpoints in checkpoints/, log in logs/training.log; watch ...",
    "2026-01-01 12:00:20,000 INFO train_step compiled and ran step 501 in 15.5 s",
    "2026-01-01 12:30:00,000 INFO training finished at step 1000",
  ]
  facts = report.log_facts("\n".join(lines))
  assert facts["wall_s"] == 5400  # 1 h + 30 min; the hour between the sessions is not training
  assert facts["compile_s"] == [25.0, 15.5]
  assert facts["backend"] == "gpu (NVIDIA H200) x 1 device(s), 1 process(es)"
