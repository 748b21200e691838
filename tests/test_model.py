"""ViT encoder / predictor: shapes, dropped tokens, attention paths, RoPE, LayerScale, remat, dtype."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hjepa_jax import experiment
from hjepa_jax.config import ConfigError
from hjepa_jax.masks import sample_masks
from hjepa_jax.model import ViTEncoder, parse_variant
from hjepa_jax.model.vit import attention
from tests._core import core_config, tiny_model

KEY = jax.random.PRNGKey(0)
MASKS = lambda model: experiment.mask_spec(core_config().mask, model.grid, 8)  # noqa: E731


@pytest.mark.parametrize(
  "variant, width, depth",
  [("Ti/16", 192, 12), ("S/16", 384, 12), ("B/16", 768, 12), ("L/16", 1024, 24), ("S/8", 384, 12)],
)
def test_variant_output_shapes(variant, width, depth):
  dims = parse_variant(variant)
  assert (dims["width"], dims["depth"]) == (width, depth)
  enc = ViTEncoder(**dims, opts=experiment.block_options(core_config().model))
  images = jnp.zeros((2, 224, 224, 3))
  variables = jax.eval_shape(enc.init, KEY, images)
  out, aux = jax.eval_shape(enc.apply, variables, images)
  grid = 224 // dims["patch_size"]
  assert out.shape == (2, grid * grid, width) and out.dtype == jnp.float32
  assert len(aux["blocks"]) == depth


def test_explicit_dims_override_variant_and_unknown_variant_fails():
  model = tiny_model(**{"model.variant": "S/16", "model.width": None, "model.num_heads": None})
  assert (model.encoder.width, model.encoder.depth, model.encoder.patch_size) == (384, 2, 4)
  with pytest.raises(ValueError, match="unknown ViT variant"):
    parse_variant("XL/16")
  with pytest.raises(ConfigError, match="model.variant"):
    tiny_model(**{"model.variant": "XL/16"})


def test_predictor_shapes():
  model = tiny_model()
  params = model.init(KEY)
  masks = jax.jit(sample_masks, static_argnums=(1, 2))(KEY, 3, MASKS(model))
  pred, ctx, _ = jax.jit(model.predict)(params, jnp.zeros((3, 32, 32, 3)), masks)
  spec = MASKS(model)
  assert pred.shape == (3, 4, spec.target_capacity, model.encoder.width)
  assert ctx.shape == (3, spec.context_capacity, model.encoder.width)


@pytest.mark.parametrize("layout", ["per_block", "joint"])
def test_predictor_blocks_are_independent(layout):
  """Moving one target block changes no other block's predictions (in either layout)."""
  model = tiny_model(**{"model.predictor.layout": layout})
  params = model.init(KEY)
  masks = jax.device_get(jax.jit(sample_masks, static_argnums=(1, 2))(KEY, 2, MASKS(model)))
  moved = dict(masks, target_idx=masks["target_idx"].copy())
  moved["target_idx"][:, 1] = (moved["target_idx"][:, 1] + 9) % 64
  predict = jax.jit(model.predict)
  images = jax.random.normal(KEY, (2, 32, 32, 3))
  a, ctx_a, _ = predict(params, images, masks)
  b, ctx_b, _ = predict(params, images, moved)
  np.testing.assert_allclose(np.delete(np.asarray(a), 1, 1), np.delete(np.asarray(b), 1, 1), atol=1e-5)
  assert np.abs(np.asarray(a[:, 1]) - np.asarray(b[:, 1])).max() > 1e-3


@pytest.mark.parametrize("depth", [1, 2])
def test_joint_layout_differs_only_in_what_context_tokens_see(depth):
  """One predictor block: mask tokens read the same context either way, so the layouts agree; from
  two blocks on they differ (joint-layout context tokens never attend to mask tokens)."""
  images = jax.random.normal(KEY, (2, 32, 32, 3))
  out = []
  for layout in ("per_block", "joint"):
    model = tiny_model(**{"model.predictor.layout": layout, "model.predictor.depth": depth})
    masks = jax.jit(sample_masks, static_argnums=(1, 2))(KEY, 2, MASKS(model))
    out.append(np.asarray(jax.jit(model.predict)(model.init(KEY), images, masks)[0]))
  gap = np.abs(out[0] - out[1]).max()
  assert gap < 1e-5 if depth == 1 else gap > 1e-4
  with pytest.raises(ConfigError, match="model.predictor.layout"):
    tiny_model(**{"model.predictor.layout": "stacked"})


def test_context_encoder_ignores_masked_out_pixels():
  model = tiny_model()
  params = model.init(KEY)
  masks = jax.device_get(jax.jit(sample_masks, static_argnums=(1, 2))(KEY, 2, MASKS(model)))
  encode = jax.jit(model.encode)
  images = np.asarray(jax.random.normal(KEY, (2, 32, 32, 3)))
  perturbed = images.copy()
  for b in range(2):
    kept = set(masks["context_idx"][b][masks["context_valid"][b]].tolist())
    for p in set(range(64)) - kept:
      r, c = divmod(p, 8)
      perturbed[b, 4 * r : 4 * r + 4, 4 * c : 4 * c + 4] += 100.0
  out_a, _ = encode(params["encoder"], images, masks["context_idx"], masks["context_valid"])
  out_b, _ = encode(params["encoder"], perturbed, masks["context_idx"], masks["context_valid"])
  valid = masks["context_valid"]
  np.testing.assert_allclose(np.asarray(out_a)[valid], np.asarray(out_b)[valid], atol=1e-5)
  # ...while the full-image (target) encoder does see them.
  full_a, _ = encode(params["encoder"], images)
  full_b, _ = encode(params["encoder"], perturbed)
  assert np.abs(np.asarray(full_a) - np.asarray(full_b)).max() > 1e-2


def test_fused_and_einsum_attention_agree_with_mask():
  kq, kk, kv = jax.random.split(KEY, 3)
  q, k, v = (jax.random.normal(x, (2, 7, 3, 8)) for x in (kq, kk, kv))
  valid = jnp.array([[True] * 5 + [False] * 2, [True] * 7])
  attn = jax.jit(attention, static_argnames=("fused", "implementation"))
  fused = attn(q, k, v, valid, fused=True, implementation="auto")
  plain = attn(q, k, v, valid, fused=False, implementation="auto")
  np.testing.assert_allclose(fused, plain, atol=1e-5)
  # Masked keys really are ignored: changing them changes nothing.
  k2 = k.at[0, 5:].set(50.0)
  np.testing.assert_allclose(attn(q, k2, v, valid, fused=True, implementation="auto"), fused, atol=1e-5)


def test_query_key_mask_agrees_between_attention_paths():
  kq, kk, kv = jax.random.split(KEY, 3)
  q, k, v = (jax.random.normal(x, (2, 6, 2, 8)) for x in (kq, kk, kv))
  allowed = jnp.asarray(np.tril(np.ones((6, 6), bool)))[None].repeat(2, 0)  # (B, T, S)
  attn = jax.jit(attention, static_argnames=("fused", "implementation"))
  fused = attn(q, k, v, allowed, fused=True, implementation="auto")
  np.testing.assert_allclose(fused, attn(q, k, v, allowed, fused=False, implementation="auto"), atol=1e-5)
  np.testing.assert_allclose(fused[:, 0], v[:, 0], atol=1e-5)  # the first query sees only the first key


@pytest.mark.parametrize("query_key", [False, True])
def test_cudnn_gets_a_mask_of_whole_query_and_key_lengths(monkeypatch, query_key):
  """cuDNN's check (jax's fused_attention_stablehlo.check_layout) rejects a mask bias that broadcasts over queries
  ("Bias must have same seq length as QKV, got 1 and S", seen on an H200): the cuDNN path passes (B, 1, T, S).
  Checked here by standing in for the kernel with XLA's, which must then give the same values."""
  kq, kk, kv = jax.random.split(KEY, 3)
  q, k, v = (jax.random.normal(x, (2, 5, 3, 8)) for x in (kq, kk, kv))
  k, v = k[:, :4].repeat(2, 1)[:, :7], v[:, :4].repeat(2, 1)[:, :7]  # S = 7 keys, T = 5 queries
  valid = jnp.array([[True] * 5 + [False] * 2, [True] * 7])
  if query_key:
    valid = valid[:, None, :].repeat(5, 1)
  seen, real = [], jax.nn.dot_product_attention

  def kernel(q, k, v, mask=None, implementation=None):
    seen.append((mask.shape, implementation))
    return real(q, k, v, mask=mask, implementation="xla")

  monkeypatch.setattr(jax.nn, "dot_product_attention", kernel)
  out = attention(q, k, v, valid, fused=True, implementation="cudnn")
  assert seen == [((2, 1, 5, 7), "cudnn")]
  np.testing.assert_allclose(out, attention(q, k, v, valid, fused=False, implementation="auto"), atol=1e-5)


def _encode(overrides, images=None):
  model = tiny_model(**overrides)
  params = model.init(KEY)
  images = jax.random.normal(KEY, (2, 32, 32, 3)) if images is None else images
  return model, params, jax.jit(model.encode)(params["encoder"], images)[0]


def test_fused_and_einsum_encoders_agree():
  _, _, a = _encode({"model.fused_attention": True})
  _, _, b = _encode({"model.fused_attention": False})
  np.testing.assert_allclose(a, b, atol=1e-4)


@pytest.mark.parametrize("switch", [{"model.rope": True}, {"model.layerscale": True, "model.layerscale_init": 0.1}])
def test_rope_and_layerscale_change_the_output(switch):
  _, _, base = _encode({})
  _, _, on = _encode(switch)
  assert np.abs(np.asarray(base) - np.asarray(on)).max() > 1e-3


def test_layerscale_adds_gamma_params_with_init_value():
  model, params, _ = _encode({"model.layerscale": True, "model.layerscale_init": 1e-5})
  gamma = params["encoder"]["transformer"]["block_0"]["ls1"]
  np.testing.assert_allclose(gamma, 1e-5)


@pytest.mark.parametrize("policy", ["nothing_saveable", "dots_with_no_batch_dims_saveable"])
def test_remat_changes_nothing_numerically(policy):
  images = jax.random.normal(KEY, (2, 32, 32, 3))
  # A fixed random readout: gradients of order one. (The squared norm of a LayerNorm output is nearly
  # constant, so its gradients are rounding noise and no tolerance separates a bug from float error.)
  readout = jax.random.normal(jax.random.PRNGKey(7), (2, 64, 32))

  def grads(overrides):
    model = tiny_model(**overrides)
    params = model.init(KEY)
    return jax.jit(jax.grad(lambda p: jnp.sum(model.encode(p, images)[0] * readout)))(params["encoder"])

  a, b = grads({}), grads({"model.remat": policy})
  # float32 agreement relative to each gradient's scale (recomputation may reorder sums).
  jax.tree_util.tree_map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6 * np.abs(y).max()), a, b)


def test_remat_saves_activation_memory():
  """XLA's buffer plan for the encoder's gradient: a remat policy must shrink the temporaries."""
  images = jnp.zeros((16, 32, 32, 3))

  def temp_bytes(policy):
    model = tiny_model(**{"model.remat": policy, "model.depth": 6, "model.width": 64})
    params = jax.eval_shape(model.init, KEY)["encoder"]
    loss = lambda p: jnp.sum(jnp.square(model.encode(p, images)[0]))  # noqa: E731
    return jax.jit(jax.grad(loss)).lower(params).compile().memory_analysis().temp_size_in_bytes

  none, nothing, dots = (temp_bytes(p) for p in ("none", "nothing_saveable", "dots_with_no_batch_dims_saveable"))
  assert nothing < 0.5 * none and dots < none, (none, nothing, dots)


def test_bfloat16_compute_keeps_float32_params():
  model, params, out = _encode({"model.dtype": "bfloat16"})
  assert all(p.dtype == jnp.float32 for p in jax.tree_util.tree_leaves(params))
  assert out.dtype == jnp.float32 and np.isfinite(np.asarray(out)).all()
  _, _, ref = _encode({})
  assert np.abs(np.asarray(out) - np.asarray(ref)).max() > 0  # really computed in bf16


@pytest.mark.parametrize(
  "overrides, key",
  [
    ({"model.remat": "everything"}, "model.remat"),
    ({"model.dtype": "float64"}, "model.dtype"),
    ({"data.image_size": 30}, "data.image_size"),
    ({"model.num_heads": 3}, "model.num_heads"),
    ({"model.fpn.fusion": "sum"}, "model.fpn.fusion"),
  ],
)
def test_bad_model_options_fail_naming_the_key(overrides, key):
  with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
    tiny_model(**overrides)


def test_init_compiles_once_per_model():
  from hjepa_jax.model.hjepa import _jitted_init  # pylint: disable=g-import-not-at-top

  model = tiny_model()
  model.init(KEY)
  compiled = _jitted_init._cache_size()  # pylint: disable=protected-access
  model.init(jax.random.PRNGKey(1))
  tiny_model().init(KEY)  # an equal model built again hits the same cache
  assert _jitted_init._cache_size() == compiled  # pylint: disable=protected-access
