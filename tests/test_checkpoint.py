"""Checkpointer: newest-k plus best, auto-resume, --config.resume from another run."""

import os

import jax.numpy as jnp
import numpy as np
import pytest

from hjepa_jax import checkpoint


def state(v):
  return {"step": jnp.int32(v), "w": jnp.full((3,), float(v))}


ABSTRACT = checkpoint.abstract_like(state(0))


def test_keeps_newest_k_and_restores_latest(tmp_path):
  ck = checkpoint.Checkpointer(str(tmp_path), keep=2)
  for s in (1, 2, 3):
    ck.save(s, state(s))
  ck.close()
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["2", "3"]
  restored, source = checkpoint.Checkpointer(str(tmp_path), keep=2).restore(ABSTRACT)
  assert int(restored["step"]) == 3 and source.endswith("/3")


def test_best_is_kept_apart_by_metric(tmp_path):
  ck = checkpoint.Checkpointer(str(tmp_path), keep=1, best_metric="eval/knn", best_mode="max")
  for s, acc in [(1, 0.5), (2, 0.9), (3, 0.7)]:
    ck.save(s, state(s))
    ck.save_best(s, state(s), {"eval/knn": acc})
  ck.close()
  assert os.listdir(tmp_path / "checkpoints") == ["3"]
  assert os.listdir(tmp_path / "best") == ["2"]


def test_resume_from_another_run_its_checkpoints_or_a_step(tmp_path):
  src = str(tmp_path / "src")
  ck = checkpoint.Checkpointer(src, keep=3)
  for s in (5, 7):
    ck.save(s, state(s))
  ck.close()
  for resume, want in [(src, 7), (os.path.join(src, "checkpoints"), 7), (os.path.join(src, "checkpoints", "5"), 5)]:
    dst = checkpoint.Checkpointer(str(tmp_path / f"dst{want}{len(resume)}"), keep=1)
    restored, _ = dst.restore(ABSTRACT, resume=resume)
    np.testing.assert_array_equal(restored["w"], np.full((3,), float(want)))
    dst.close()
  with pytest.raises(checkpoint.CheckpointError, match="--config.resume"):
    checkpoint.Checkpointer(str(tmp_path / "x"), keep=1).restore(ABSTRACT, resume=str(tmp_path / "missing"))


def test_own_checkpoints_win_over_resume(tmp_path):
  own = checkpoint.Checkpointer(str(tmp_path / "own"), keep=1)
  own.save(9, state(9))
  restored, _ = own.restore(ABSTRACT, resume=str(tmp_path / "missing"))
  assert int(restored["step"]) == 9
  own.close()
