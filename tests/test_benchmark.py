"""launch/benchmark.py, the prepared accelerator check: its --tiny CPU run end to end (every field, finite numbers,
the markdown), its micro-benchmark where `import tensorflow` fails, the chip table and MFU, the cell plan, and the
CIFAR-10 pack that carries a subset to a machine without the data folder.

The two runs are background jobs (tests/_smoke.BACKGROUND["benchmark_runs"]), queued after the others; the tests
that read them run last.
"""

import json
import math
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from hjepa_jax import benchmark as bench
from hjepa_jax import devices
from tests import _smoke

CELL_NUMBERS = ("compile_s", "step_ms", "images_per_s", "peak_memory_mib", "flops_per_step", "flops_lowered")
CELL_NUMBERS += ("model_flops_per_step", "batch", "params", "loss_first", "loss_last", "xla_temp_bytes")


def _report(benchmark_runs, job):
  code, output, out = benchmark_runs[job]
  assert code == 0, output[-3000:]
  with open(os.path.join(out, "benchmark.json")) as f:
    return json.load(f), out


def _finite(value):
  return isinstance(value, (int, float)) and math.isfinite(value)


def test_tiny_run_reports_every_field(benchmark_runs):
  report, out = _report(benchmark_runs, "bench_tiny")
  cells = report["bench"]["cells"]
  assert [(c["model"], c["attention"], c["status"]) for c in cells] == [("tiny", "einsum", "ok"), ("tiny", "xla", "ok")]
  for c in cells:
    for key in CELL_NUMBERS:
      assert _finite(c[key]) and c[key] >= 0, (key, c.get(key))
    assert c["step_ms_min"] <= c["step_ms"] <= c["step_ms_max"] and c["timed_steps"] == 3
    assert c["mfu"] is None and "'cpu'" in c["mfu_reason"]  # no peak figure for a CPU: null, with the reason
    assert c["speedup_vs_einsum"] > 0
  assert report["device"]["backend"] == "cpu" and "RSS" in report["device"]["peak_memory_source"]
  assert report["bench"]["model_flops"]["tiny"]["from"] == "tiny/float32/einsum/none"

  train = report["train"]
  assert train["status"] == "ok", train.get("error")
  assert train["steps"] == train["planned_steps"] >= 2 and _finite(train["last_metrics"]["train/loss"])
  timing = train["timing"]
  assert _finite(timing["step_ms"]) and timing["step_ms"] > 0 and _finite(timing["step_ms_fresh"])
  # The run is planned from the slower of the reused-batch and new-batch steps (a GPU run sees the latter).
  assert timing["plan_ms"] == max(timing["step_ms"], timing["step_ms_fresh"]) > 0
  for name in ("trained", "random_init"):
    metrics = train["eval"][name]["metrics"]["avgpool"]
    for key in ("knn_top1_k20", "linear_probe_top1"):
      assert 0 <= metrics[key] <= 1, (name, key, metrics)
  assert train["eval"]["trained"]["step"] == train["steps"] and train["eval"]["random_init"]["step"] == 0

  with open(os.path.join(out, "benchmark.md")) as f:
    text = f.read()
  assert "| tiny (32 wide" in text and "| einsum |" in text and "| xla |" in text
  assert "knn_top1_k20" in text and "linear_probe_top1" in text and "avgpool random init" in text
  assert "on a new batch each step" in text and "the planned step's rate" in text


def test_micro_benchmark_runs_without_tensorflow(benchmark_runs, tmp_path):
  report, _ = _report(benchmark_runs, "bench_no_tf")  # `import tensorflow` raised in it and in every cell process
  assert "train" not in report
  assert [c["status"] for c in report["bench"]["cells"]] == ["ok", "ok"]
  assert not any(c["tensorflow_imported"] for c in report["bench"]["cells"])
  assert all(len(c["rounds"]["step_ms"]) == 2 for c in report["bench"]["cells"])  # --rounds=2: medians of both
  tiny = report["bench"]["reference"]["tiny"]
  assert tiny["status"] == "skipped" and "no ViT 32 wide" in tiny["reason"]
  script = tmp_path / "child.py"  # the blocker holds in processes the script starts
  script.write_text(
    "import subprocess, sys\nsys.exit(subprocess.run([sys.executable, '-c', 'import tensorflow']).returncode)"
  )
  env = dict(os.environ, **_smoke.NO_TENSORFLOW_ENV)
  blocked = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env)
  assert blocked.returncode == 1 and "No module named 'tensorflow'" in blocked.stderr


@pytest.mark.parametrize(
  "kind, dtype, name, tflops",
  [
    ("NVIDIA H200", "bfloat16", "NVIDIA H200 SXM", 989.5),
    ("NVIDIA H100 80GB HBM3", "bfloat16", "NVIDIA H100 SXM", 989.5),
    ("NVIDIA H100 PCIe", "float32", "NVIDIA H100 PCIe", 378.0),
    ("NVIDIA A100-SXM4-80GB", "float32", "NVIDIA A100", 156.0),
    ("NVIDIA L4", "bfloat16", "NVIDIA L4", 121.0),
    ("NVIDIA L40S", "bfloat16", "NVIDIA L40S", 366.5),
    ("NVIDIA GeForce RTX 4090", "bfloat16", "NVIDIA GeForce RTX 4090", 165.2),
    ("Apple M2 Max GPU (METAL)", "float32", "Apple M2 Max GPU", 13.6),
  ],
)
def test_chip_table(kind, dtype, name, tflops):
  peak, chip, reason = devices.peak_flops(kind, dtype)
  assert chip.name == name and peak == tflops * 1e12 and not reason
  assert chip.source


def test_unknown_or_missing_peak_gives_no_mfu_and_a_reason():
  peak, chip, reason = devices.peak_flops("cpu", "float32")
  assert peak is None and chip is None and "'cpu'" in reason
  peak, chip, reason = devices.peak_flops("Tesla T4", "bfloat16")
  assert peak is None and chip.name == "NVIDIA T4" and "bfloat16" in reason
  assert devices.mfu(2e12, 0.01, 1e15) == pytest.approx(0.2)
  assert devices.mfu(None, 0.01, 1e15) is None and devices.mfu(2e12, 0.01, None) is None
  assert all(c.source for c in devices.CHIPS)


def test_cells_in_priority_order_with_reasons_for_skips():
  cells = bench.plan_cells(["ti4_32", "s16_224"], ["bfloat16", "float32"], ["einsum", "xla", "cudnn"], ["none", "x"])
  assert len(cells) == 24 and bench.cell_name(cells[0]) == "ti4_32/bfloat16/einsum/none"
  assert [bench.cell_name(c) for c in cells[2:6]] == [
    "ti4_32/bfloat16/xla/none",
    "s16_224/bfloat16/xla/none",
    "ti4_32/bfloat16/cudnn/none",
    "s16_224/bfloat16/cudnn/none",
  ]
  cudnn_bf16, cudnn_f32 = cells[4], cells[10]
  assert bench.skip_reason(cudnn_bf16, "cuda") is None and "CUDA only" in bench.skip_reason(cudnn_bf16, "cpu")
  assert "bfloat16" in bench.skip_reason(cudnn_f32, "cuda") and bench.skip_reason(cells[0], "cpu") is None
  config, overrides = bench.cell_config(cudnn_bf16, {"data.batch_size": 8})
  assert config.startswith("configs/conservative.py:model=Ti/4")
  assert overrides["data.batch_size"] == 8 and overrides["model.attention_impl"] == "cudnn"
  cfg = bench.build_config(config, overrides)  # every cell's config is a real one
  assert (cfg.model.variant, cfg.data.image_size, cfg.model.dtype) == ("Ti/4", 32, "bfloat16")


def test_mfu_uses_the_model_flops_of_the_einsum_step():
  device = {"chip": "NVIDIA H200"}

  def cell(attention, remat, step_ms, flops):
    return dict(model="s16_224", dtype="bfloat16", attention=attention, remat=remat, status="ok", device=device,
                step_ms=step_ms, flops_lowered=flops)  # fmt: skip

  cells = [cell("einsum", "none", 20.0, 4e12), cell("cudnn", "none", 10.0, 1e12), cell("einsum", "x", 25.0, 5e12)]
  flops = bench.add_mfu(cells)
  assert flops == {"s16_224": {"flops": 4e12, "from": "s16_224/bfloat16/einsum/none", "count": "lowered"}}
  assert cells[1]["mfu"] == pytest.approx(4e12 / 0.010 / 989.5e12) and cells[1]["speedup_vs_einsum"] == 2.0
  assert cells[2]["mfu"] == pytest.approx(4e12 / 0.025 / 989.5e12)  # remat's recomputation is not model work


def test_mfu_falls_back_to_the_compiled_count_where_the_lowered_step_has_none():
  """jax 0.11 on an H200 gave no cost analysis of the lowered step; the compiled einsum step's count stands in."""
  device = {"chip": "NVIDIA H200"}
  cells = [
    dict(
      model="s16_224",
      dtype="bfloat16",
      attention=a,
      remat="none",
      status="ok",
      device=device,
      step_ms=ms,
      flops_lowered=None,
      flops_per_step=f,
    )  # fmt: skip
    for a, ms, f in (("cudnn", 10.0, 1e12), ("einsum", 20.0, 4e12))
  ]
  assert bench.add_mfu(cells)["s16_224"] == {"flops": 4e12, "from": "s16_224/bfloat16/einsum/none", "count": "compiled"}
  assert cells[0]["mfu"] == pytest.approx(4e12 / 0.010 / 989.5e12)  # cuDNN's own count (custom calls: 0) unused


def test_layouts_are_cells_and_one_at_a_time_keeps_the_base_and_its_neighbours():
  cells = bench.plan_cells(["ti16_224"], ["float32"], ["xla", "einsum"], ["none", "nothing_saveable"], bench.LAYOUTS)
  assert len(cells) == 8 and bench.cell_name(cells[0]) == "ti16_224/float32/xla/none/per_block"
  oaat = bench.plan_cells(
    ["ti16_224"], ["float32"], ["xla", "einsum"], ["none", "nothing_saveable"], bench.LAYOUTS, True
  )
  assert [bench.cell_name(c) for c in oaat] == [
    "ti16_224/float32/xla/none/per_block",
    "ti16_224/float32/xla/none/joint",
    "ti16_224/float32/einsum/none/per_block",
    "ti16_224/float32/xla/nothing_saveable/per_block",
  ]
  _, overrides = bench.cell_config(oaat[1], {})
  assert overrides["model.predictor.layout"] == "joint" and overrides["model.fused_attention"] is True
  assert bench.cell_config(cells[0] | {"layout": None}, {})[1]["model.predictor.layout"] == "per_block"  # the recipe's
  # A layout is other work: its model FLOPs (and MFU) are its own.
  device = {"chip": "NVIDIA H200"}
  measured = [c | dict(status="ok", device=device, step_ms=10.0, flops_lowered=f) for c, f in zip(oaat, (4e12, 3e12))]
  assert set(bench.add_mfu(measured)) == {"ti16_224/per_block", "ti16_224/joint"}
  assert measured[1]["model_flops_per_step"] == 3e12


def test_rounds_merge_to_medians_and_a_failure_in_any_round_stays():
  def cell(step_ms, memory, status="ok"):
    return dict(model="m", batch=32, status=status, step_ms=step_ms, peak_memory_mib=memory, compile_s=1.0)

  rounds = [
    [cell(100.0, 10.0), cell(50.0, 5.0)],
    [cell(300.0, 30.0), cell(60.0, 6.0, "error")],
    [cell(200.0, 20.0), cell(70.0, 7.0)],
  ]
  first, second = bench.merge_rounds(rounds)
  assert first["step_ms"] == 200.0 and first["peak_memory_mib"] == 20.0 and first["images_per_s"] == 160.0
  assert first["rounds"]["step_ms"] == [100.0, 300.0, 200.0]
  assert second["status"] == "error" and "rounds" not in second
  assert bench.merge_rounds([[cell(100.0, 10.0)]])[0] == cell(100.0, 10.0)  # one round: as measured


def test_reference_runs_the_same_model_and_names_what_still_differs():
  config, overrides = bench.cell_config(dict(model="ti16_224", dtype="float32", attention="xla", remat="none"), {})
  args, notes = bench.reference_args(bench.build_config(config, overrides))
  assert args == dict(model="vit_tiny", patch=16, img=224, batch=32, pred_depth=6, pred_dim=192, bf16=False)
  assert notes == []  # issue 11's setup is I-JEPA's step
  config, overrides = bench.cell_config(dict(model="ti16_224", dtype="float32", attention="xla", remat="none"), {})
  _, notes = bench.reference_args(bench.build_config(config, overrides | {"model.predictor.layout": "joint"}))
  assert notes == ["our predictor layout is joint (the reference's: one sequence per target block)"]
  assert bench.cell_notes(notes + ["x"], "per_block") == ["x"] and bench.cell_notes(["x"], "joint") == ["x", notes[0]]
  assert bench.cell_notes(notes, None) == notes  # a cell without a layout runs its recipe's
  config, overrides = bench.cell_config(dict(model="s16_224", dtype="bfloat16", attention="xla", remat="none"), {})
  args, notes = bench.reference_args(bench.build_config(config, overrides))
  assert args["model"] == "vit_small" and args["batch"] == 128 and args["bf16"]
  assert any("3 hierarchy levels" in n for n in notes) and any("layerscale" in n for n in notes)
  config, overrides = bench.cell_config(dict(model="ti4_32", dtype="float32", attention="xla", remat="none"), {})
  args, notes = bench.reference_args(bench.build_config(config, overrides))
  assert args is None and "8x8" in notes[0]
  cmd = bench.reference_command("py", "ref.py", dict(model="vit_tiny", bf16=True, batch=8), 2, 3, threads=2)
  assert cmd == ["py", bench.PEAK_RUN, "ref.py", "--model", "vit_tiny", "--bf16", "--batch", "8", "--warmup", "2",
                 "--steps", "3", "--threads", "2"]  # fmt: skip


def test_reference_output_parsed_and_ratios_added(tmp_path):
  script = tmp_path / "ref.py"  # prints what ijepa_ref_bench.py prints, and holds ~64 MiB
  script.write_text(
    "import json, sys\nblock = bytearray(64 << 20)\n"
    "print(json.dumps(dict(batch=32, step_ms_median=400.0, img_per_s=80.0, argv=sys.argv[1:])))\n"
  )
  proc = subprocess.run([sys.executable, bench.PEAK_RUN, str(script), "--x", "1"], capture_output=True, text=True)
  assert proc.returncode == 0, proc.stderr
  ref = bench.parse_reference_output(proc.stdout)
  assert ref["status"] == "ok" and ref["argv"] == ["--x", "1"] and ref["images_per_s"] == 80.0
  assert ref["peak_memory_mib"] >= 64 and ref["peak_run"]["cuda_peak_mib"] is None
  bad = bench.parse_reference_output("Traceback ...\nModuleNotFoundError: No module named 'torch'")
  assert bad["status"] == "error" and "No module named 'torch'" in bad["error"]
  cells = [dict(model="m", status="ok", images_per_s=120.0, peak_memory_mib=ref["peak_memory_mib"] / 2)]
  bench.add_reference_ratios(cells + [dict(model="other", status="ok")], {"m": ref})
  assert cells[0]["vs_reference"] == 1.5 and cells[0]["memory_vs_reference"] == pytest.approx(0.5)


def test_parse_overrides():
  assert bench.parse_overrides(["model.depth=2", "model.variant=Ti/4", "loss.hierarchy_weights=(1.0, 0.5)"]) == {
    "model.depth": 2,
    "model.variant": "Ti/4",
    "loss.hierarchy_weights": (1.0, 0.5),
  }
  with pytest.raises(ValueError, match="KEY=VALUE"):
    bench.parse_overrides(["model.depth"])


def test_a_run_slower_than_its_plan_is_stopped_saved_and_evaluated(benchmark_runs):
  """The training worker's time limit (SIGTERM: finish the step, save) instead of a kill that loses the run."""
  report, out = _report(benchmark_runs, "bench_stopped")
  train = report["train"]
  assert train["status"] == "ok", train.get("error")
  assert "by the time limit" in train["stopped"] and 1 <= train["steps"] < train["planned_steps"]
  assert train["eval"]["trained"]["step"] == train["steps"]  # what it reached is what was evaluated
  with open(os.path.join(out, "benchmark.md")) as f:
    assert "Stopped by the time limit after" in f.read()


def test_the_time_limit_waits_for_the_loops_handler_and_a_late_signal_is_harmless():
  """In-process: SIGTERM goes out only while the training loop's StopRequest is up; outside it, it is ignored."""
  import importlib.util  # pylint: disable=g-import-not-at-top
  import signal  # pylint: disable=g-import-not-at-top
  import time  # pylint: disable=g-import-not-at-top

  from hjepa_jax.periodic import StopRequest  # pylint: disable=g-import-not-at-top

  spec = importlib.util.spec_from_file_location("launch_benchmark", os.path.join(_smoke.ROOT, "launch", "benchmark.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  before = signal.getsignal(signal.SIGTERM)
  with module._time_limit(time.time()) as limit:  # pylint: disable=protected-access
    time.sleep(0.3)
    assert not limit.fired  # no loop handler yet: it waits (the default action would have killed this process)
    with StopRequest() as stop:
      deadline = time.time() + 10
      while stop.requested is None and time.time() < deadline:
        time.sleep(0.05)
    assert stop.requested == "SIGTERM" and limit.fired
    os.kill(os.getpid(), signal.SIGTERM)  # after the loop, before the block ends: ignored
    time.sleep(0.1)
  assert signal.getsignal(signal.SIGTERM) is before


def _write_batch(path, images, labels):
  with open(path, "wb") as f:
    pickle.dump({b"data": images.transpose(0, 3, 1, 2).reshape(len(images), -1), b"labels": labels.tolist()}, f)


def _source(tmp_path):
  """A cifar-10-batches-py folder of random images: 5 x 12 train, 12 test (and the arrays it holds)."""
  rs = np.random.RandomState(0)
  source = tmp_path / "cifar-10-batches-py"
  source.mkdir()
  images = rs.randint(0, 256, (6, 12, 32, 32, 3), np.uint8)
  labels = rs.randint(0, 10, (6, 12))
  for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
    _write_batch(source / name, images[i], labels[i])
  arrays = {
    "train": (images[:5].reshape(-1, 32, 32, 3), labels[:5].reshape(-1)),
    "test": (images[5], labels[5]),
  }
  return source, arrays


def test_cifar10_pack_unpacks_losslessly_as_the_layout_the_loader_reads(tmp_path, monkeypatch):
  from hjepa_jax.data.archives import load_cifar10  # pylint: disable=g-import-not-at-top

  monkeypatch.setattr(bench, "MOSAIC", (2, 5))  # several mosaics, the last one padded
  source, arrays = _source(tmp_path)
  pack = tmp_path / "pack" / "cifar10_subset.npz"
  assert bench.pack_cifar10(str(pack), str(source), 23, 7) == {"train": 23, "test": 7}
  assert bench.unpack_cifar10(str(pack), str(tmp_path / "unpacked")) == {"train": 23, "test": 7}
  for split, (all_images, all_labels) in arrays.items():
    got_images, got_labels = load_cifar10(tmp_path / "unpacked", split)
    n = len(all_labels)
    idx = np.sort(np.random.default_rng(0).permutation(n)[: len(got_labels)])  # the pack's seeded subset
    np.testing.assert_array_equal(got_images, all_images[idx])  # byte for byte: the codec is lossless
    np.testing.assert_array_equal(got_labels, all_labels[idx])


def test_cifar10_pack_parts_join_to_the_whole_set(tmp_path):
  """A set over the carry limit travels as parts (here: train in two halves, test alone) joined on arrival."""
  from hjepa_jax.data.archives import load_cifar10  # pylint: disable=g-import-not-at-top

  source, arrays = _source(tmp_path)
  files = [str(tmp_path / f"part{k}.npz") for k in range(3)]
  assert bench.pack_cifar10(files[0], str(source), 60, 0, part=(1, 2)) == {"train": 30}
  assert bench.pack_cifar10(files[1], str(source), 60, 0, part=(2, 2)) == {"train": 30}
  assert bench.pack_cifar10(files[2], str(source), 0, 12) == {"test": 12}
  assert bench.unpack_cifar10(files, str(tmp_path / "whole")) == {"train": 60, "test": 12}
  for split, (all_images, all_labels) in arrays.items():
    got_images, got_labels = load_cifar10(tmp_path / "whole", split)
    np.testing.assert_array_equal(got_images, all_images)
    np.testing.assert_array_equal(got_labels, all_labels)
  with pytest.raises(ValueError, match="hold no test images"):
    bench.unpack_cifar10(files[:2], str(tmp_path / "no_test"))


@pytest.mark.parametrize("text", ["0/2", "3/2", "1", "a/b", "1/0"])
def test_a_bad_pack_part_is_named(text):
  with pytest.raises(ValueError, match="I/N"):
    bench.parse_part(text)
  assert bench.parse_part("2/3") == (2, 3)
