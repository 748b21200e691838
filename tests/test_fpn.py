"""Feature Pyramid over hierarchy levels: cell parents, shapes, fusion, top-down flow, jit, bf16."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hjepa_jax import hierarchy
from hjepa_jax.model.fpn import FPN, cell_ids, parent_cells

KEY = jax.random.PRNGKey(0)
GRID = (5, 5)
NUM_LEVELS = 3  # 5x5 tokens -> 3x3 cells -> 2x2 cells


def test_parent_cells_hand_checked():
  # 4x4 grid: level 1 is 2x2 cells, all inside the single level-2 cell.
  np.testing.assert_array_equal(parent_cells((4, 4), 1), [0, 0, 0, 0])
  # 8x8 grid: level 1 is 4x4 cells, each 2x2 block of them shares a level-2 parent (2x2 cells).
  np.testing.assert_array_equal(parent_cells((8, 8), 1), [0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3, 2, 2, 3, 3])
  # 5x5 grid: level 1 is ceil(5/2)=3 x 3 cells, level 2 is ceil(5/4)=2 x 2; the odd last
  # row/column of level-1 cells falls into the partial level-2 cells.
  np.testing.assert_array_equal(parent_cells((5, 5), 1), [0, 0, 1, 0, 0, 1, 2, 2, 3])
  np.testing.assert_array_equal(parent_cells((5, 5), 2), [0, 0, 0, 0])
  assert parent_cells((5, 5), 1).dtype == np.int32
  with pytest.raises(ValueError, match="level >= 1"):
    parent_cells((4, 4), 0)


@pytest.mark.parametrize("grid", [(5, 7), (8, 8)])
def test_cell_ids_and_parents_match_pool_to_level(grid):
  n = grid[0] * grid[1]
  idx = np.arange(n)
  # Pool one-hot token identities: token t's cell at level k is where its identity lands.
  eye = np.eye(n, dtype=np.float32)[None]
  pool = jax.jit(hierarchy.pool_to_level, static_argnums=(3, 4))
  for level in (1, 2):
    pooled, _ = pool(eye, idx[None], np.ones((1, n), bool), grid, level)
    np.testing.assert_array_equal(np.argmax(np.asarray(pooled[0]), axis=0), cell_ids(idx, grid, level))
    np.testing.assert_array_equal(parent_cells(grid, level)[cell_ids(idx, grid, level)], cell_ids(idx, grid, level + 1))


@jax.jit
def pool_levels(tokens, idx, valid):
  return [tokens] + [hierarchy.pool_to_level(tokens, idx, valid, GRID, lv)[0] for lv in range(1, NUM_LEVELS)]


def make_levels(seed=0, b=2, m=2, k=6, d=8):
  """Random tokens of M target blocks (one padded slot each) and their pooled levels."""
  rng = np.random.RandomState(seed)
  idx = np.stack([rng.permutation(GRID[0] * GRID[1])[:k] for _ in range(b * m)]).reshape(b, m, k)
  valid = np.broadcast_to(np.arange(k) < k - 1, (b, m, k))
  tokens = rng.randn(b, m, k, d).astype(np.float32)
  return pool_levels(tokens, idx, valid), jnp.asarray(idx)


@functools.lru_cache(maxsize=None)
def init_apply(fusion="add", out_dim=None, dtype=jnp.float32):
  """(params, jitted apply) of a small FPN, cached per config: compiles dominate CPU test time."""
  fpn = FPN(NUM_LEVELS, 16, fusion=fusion, out_dim=out_dim, dtype=dtype)
  return random_params(fpn), jax.jit(lambda p, lv, i: fpn.apply(p, lv, i, GRID))


def random_params(fpn, seed=0):
  """Params from shapes + numpy draws: compiling flax's random init costs more than the model."""
  levels, idx = make_levels()
  shapes = jax.eval_shape(lambda lv, i: fpn.init(KEY, lv, i, GRID), levels, idx)
  rng = np.random.RandomState(seed)
  return jax.tree_util.tree_map(lambda s: (rng.randn(*s.shape) / np.sqrt(s.shape[0])).astype(s.dtype), shapes)


def test_output_shapes_and_out_dim():
  levels, idx = make_levels()
  for out_dim, expect in ((None, 8), (12, 12)):
    params, apply = init_apply(out_dim=out_dim)
    out = apply(params, levels, idx)
    assert [o.shape for o in out] == [p.shape[:-1] + (expect,) for p in levels]
    assert all(o.dtype == jnp.float32 for o in out)
  assert [p.shape[2] for p in levels[1:]] == [9, 4]


def test_add_and_concat_fusion_differ():
  levels, idx = make_levels()
  p_add, apply_add = init_apply("add")
  p_cat, apply_cat = init_apply("concat")
  names_add, names_cat = set(p_add["params"]), set(p_cat["params"])
  assert names_cat - names_add == {"fuse_0", "fuse_1"} and names_add <= names_cat
  out_add, out_cat = apply_add(p_add, levels, idx), apply_cat(p_cat, levels, idx)
  assert not np.allclose(out_add[0], out_cat[0])  # (an unknown fusion is refused at start-up: test_model)


@pytest.mark.parametrize("fusion", ["add", "concat"])
def test_information_flows_top_down_only(fusion):
  levels, idx = make_levels()
  params, apply = init_apply(fusion)
  base = apply(params, levels, idx)

  def changed(level):
    bumped = list(levels)
    bumped[level] = bumped[level] + 1.0
    out = apply(params, bumped, idx)
    return [not np.allclose(o, b) for o, b in zip(out, base)]

  assert changed(0) == [True, False, False]  # finer levels never reach coarser outputs
  assert changed(1) == [True, True, False]
  assert changed(2) == [True, True, True]  # the coarsest level refines every finer one


def test_jit_compiles_once_for_new_values():
  traces = []
  fpn = FPN(NUM_LEVELS, 16, fusion="concat")
  levels, idx = make_levels()
  params = random_params(fpn)

  @jax.jit
  def apply(p, lv, i):
    traces.append(1)
    return fpn.apply(p, lv, i, GRID)

  first = apply(params, levels, idx)
  levels2, idx2 = make_levels(1)
  second = apply(params, levels2, idx2)
  assert len(traces) == 1
  assert not np.allclose(first[0], second[0])


def test_bfloat16_compute_keeps_float32_params():
  levels, idx = make_levels()
  p32, apply32 = init_apply()
  p16, apply16 = init_apply(dtype=jnp.bfloat16)
  assert all(x.dtype == jnp.float32 for x in jax.tree_util.tree_leaves(p16))
  out32, out16 = apply32(p32, levels, idx), apply16(p16, levels, idx)
  for a, b in zip(out32, out16):
    assert b.dtype == jnp.float32 and bool(jnp.isfinite(b).all())
    np.testing.assert_allclose(b, a, atol=0.1, rtol=0.05)
