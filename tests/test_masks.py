"""Multi-block masking: static shapes, disjointness, ranges, coverage, reproducibility."""

import jax
import numpy as np
import pytest

from hjepa_jax.config import ConfigError, base_config
from hjepa_jax.experiment import mask_spec
from hjepa_jax.masks import sample_masks


def spec_with(batch_size=32, **overrides):
  """The schema's (I-JEPA) masking on the 14x14 grid of ViT-*/16 at 224 px, with `mask.*` overrides."""
  mk = base_config().mask
  mk.update(overrides)
  return mask_spec(mk, (14, 14), batch_size)


SPEC = spec_with(capacity="exact")  # every token kept: blocks are whole rectangles
BATCH, BATCHES = 16, 100


@pytest.fixture(scope="module")
def draws():
  traces = []

  def sample(rng):
    traces.append(1)
    return sample_masks(rng, BATCH, SPEC)

  fn = jax.jit(sample)
  out = [jax.device_get(fn(jax.random.fold_in(jax.random.PRNGKey(0), i))) for i in range(BATCHES)]
  return out, len(traces)


def test_fixed_shapes_and_single_compile(draws):
  out, traces = draws
  assert traces == 1
  kt, kc = SPEC.target_capacity, SPEC.context_capacity
  for m in out:
    assert m["target_idx"].shape == (BATCH, 4, kt) and m["target_valid"].shape == (BATCH, 4, kt)
    assert m["context_idx"].shape == (BATCH, kc) and m["context_valid"].shape == (BATCH, kc)
    assert m["target_idx"].dtype == np.int32 and m["context_idx"].dtype == np.int32


def test_context_and_targets_disjoint_and_large_enough(draws):
  for m in draws[0]:
    for b in range(BATCH):
      ctx = set(m["context_idx"][b][m["context_valid"][b]].tolist())
      tgt = set(m["target_idx"][b][m["target_valid"][b]].tolist())
      assert not ctx & tgt
      assert len(ctx) >= SPEC.min_context
      assert m["context_valid"][b].sum() == len(ctx)  # no duplicate context tokens


def test_target_blocks_are_rectangles_within_ranges(draws):
  n = SPEC.num_patches
  for m in draws[0]:
    for b in range(BATCH):
      for j in range(SPEC.num_targets):
        idx = m["target_idx"][b, j][m["target_valid"][b, j]]
        rows, cols = idx // 14, idx % 14
        h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert len(set(idx.tolist())) == len(idx) == h * w  # a full rectangle
        assert SPEC.target_scale[0] <= h * w / n <= SPEC.target_scale[1]
        assert SPEC.target_aspect[0] <= h / w <= SPEC.target_aspect[1]


def test_every_position_reachable_and_no_edge_bias(draws):
  tgt_count = np.zeros(196)
  ctx_count = np.zeros(196)
  for m in draws[0]:
    np.add.at(tgt_count, m["target_idx"][m["target_valid"]], 1)
    np.add.at(ctx_count, m["context_idx"][m["context_valid"]], 1)
  assert (tgt_count > 0).all() and (ctx_count > 0).all()
  grid = tgt_count.reshape(14, 14)
  # Placement is uniform over valid corners, so coverage is mirror-symmetric up to noise:
  # the last row/column is hit as often as the first (an off-by-one would starve them).
  for a, b in [(grid[0], grid[-1]), (grid[:, 0], grid[:, -1])]:
    assert abs(a.sum() - b.sum()) < 0.1 * (a.sum() + b.sum())


def test_same_seed_and_step_same_masks():
  key = jax.random.PRNGKey(3)
  a = sample_masks(jax.random.fold_in(key, 7), 4, SPEC)
  b = sample_masks(jax.random.fold_in(key, 7), 4, SPEC)
  c = sample_masks(jax.random.fold_in(key, 8), 4, SPEC)
  for k in a:
    np.testing.assert_array_equal(a[k], b[k])
  assert not np.array_equal(a["target_idx"], c["target_idx"])


def test_masks_depend_only_on_example_index():
  """Splitting a batch (gradient accumulation, several hosts) draws the same masks."""
  key = jax.random.PRNGKey(0)
  full = sample_masks(key, 8, SPEC)
  tail = sample_masks(key, 4, SPEC, offset=4)
  for k in full:
    np.testing.assert_array_equal(full[k][4:], tail[k])


def test_exact_capacity_is_the_bound_and_never_trims(draws):
  assert (SPEC.context_capacity, SPEC.target_capacity) == (SPEC.context_bound, SPEC.target_bound)
  ctx = np.concatenate([m["context_valid"].sum(1) for m in draws[0]])
  assert ctx.max() < SPEC.context_capacity  # room to spare: nothing was dropped


def test_batch_min_capacity_is_the_expected_batch_minimum():
  """The capacity is the 1/(B+1) size quantile: about the mean of a batch's smallest context."""
  small, large = spec_with(batch_size=32), spec_with(batch_size=512)
  assert small.context_capacity < SPEC.context_bound and small.target_capacity <= SPEC.target_bound
  assert large.context_capacity <= small.context_capacity  # bigger batches have smaller minima
  m = jax.device_get(sample_masks(jax.random.PRNGKey(1), 32 * 64, SPEC))
  sizes = m["context_valid"].sum(1).reshape(64, 32)
  assert abs(sizes.min(1).mean() - small.context_capacity) <= 0.15 * small.context_capacity
  # Contexts larger than the capacity keep a random subset, still disjoint from the targets.
  t = jax.device_get(sample_masks(jax.random.PRNGKey(1), 64, small))
  assert (t["context_valid"].sum(1) == small.context_capacity).mean() > 0.9
  for b in range(64):
    ctx = set(t["context_idx"][b][t["context_valid"][b]].tolist())
    assert not ctx & set(t["target_idx"][b][t["target_valid"][b]].tolist())
    assert len(ctx) == t["context_valid"][b].sum()


@pytest.mark.parametrize(
  "kw, msg",
  [
    (dict(target_scale=(0.5, 0.2)), "increasing"),
    (dict(target_scale=(0.9, 1.5)), "<= 1"),
    (dict(target_scale=(0.01, 0.011)), "no block"),
    (dict(capacity="min"), "capacity"),
  ],
)
def test_bad_specs_fail_with_named_field(kw, msg):
  with pytest.raises(ConfigError, match=msg) as e:
    spec_with(**kw)
  assert f"mask.{next(iter(kw))}" in str(e.value)
