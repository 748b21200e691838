"""The feature switches of the config and how to flip each one (tests/test_switches.py, launch/ablate.py).

Each entry: key -> (kind, overrides). The overrides flip the switch and set what it needs (an FPN
fusion only matters with the FPN on); a callable value is computed from the base config, so
gradient accumulation keeps the images per update. Kinds:
  changes:  the loss (or, for data switches, the images) must differ after flipping.
  exact:    equivalent by design (remat, fused attention, accumulation): same loss, other program.
  platform: a backend choice that is a no-op on CPU; its CUDA-only value is refused elsewhere.
Overrides are applied with ConfigDict's own `update_from_flattened_dict`. Not TensorFlow-dependent.
"""

SWITCHES = {
  "model.fused_attention": ("exact", {"model.fused_attention": False}),
  "model.attention_impl": ("platform", {"model.attention_impl": "cudnn"}),
  "model.layerscale": ("changes", {"model.layerscale": True}),
  "model.rope": ("changes", {"model.rope": True}),
  "model.remat": ("exact", {"model.remat": "nothing_saveable"}),
  "model.dtype": ("changes", {"model.dtype": "bfloat16"}),
  "model.fpn.enabled": ("changes", {"model.fpn.enabled": True}),
  "model.fpn.fusion": ("changes", {"model.fpn.enabled": True, "model.fpn.fusion": "concat"}),
  "model.predictor.layout": ("changes", {"model.predictor.layout": "per_block"}),
  "mask.capacity": ("changes", {"mask.capacity": "exact"}),
  "loss.type": ("changes", {"loss.type": "mse"}),
  "loss.num_hierarchies": ("changes", {"loss.num_hierarchies": 3, "loss.hierarchy_weights": (1.0, 0.5, 0.25)}),
  "loss.hierarchy_weights": ("changes", {"loss.hierarchy_weights": (1.0, 2.0)}),
  "loss.hierarchy": ("changes", {"loss.hierarchy": "deep"}),  # multiscale and the designs' keys: test_levels.py
  "loss.contrastive.weight": ("changes", {"loss.contrastive.weight": 0.5}),
  "loss.vicreg.weight": ("changes", {"loss.vicreg.weight": 0.05}),
  "loss.vicreg.on_predictions": ("changes", {"loss.vicreg.weight": 0.05, "loss.vicreg.on_predictions": True}),
  "loss.sigreg.weight": ("changes", {"loss.sigreg.weight": 0.05}),
  "data.multicrop.num_local": ("changes", {"loss.contrastive.weight": 0.5, "data.multicrop.num_local": 2}),
  "optim.grad_accum_steps": (
    "exact",
    {"optim.grad_accum_steps": 2, "data.batch_size": lambda c: c.data.batch_size // 2},
  ),
  "data.deit3_strength": ("changes", {"data.deit3_strength": 1.0}),
  "data.horizontal_flip": ("changes", {"data.horizontal_flip": True}),
}
# Non-bool keys that select a feature (bool keys are enumerated from the schema by the test).
KNOBS = frozenset(
  {
    "model.attention_impl",
    "model.remat",
    "model.dtype",
    "model.fpn.fusion",
    "model.predictor.layout",
    "mask.capacity",
    "loss.type",
    "loss.num_hierarchies",
    "loss.hierarchy_weights",
    "loss.hierarchy",
    "loss.contrastive.weight",
    "loss.vicreg.weight",
    "loss.sigreg.weight",
    "data.multicrop.num_local",
    "optim.grad_accum_steps",
    "data.deit3_strength",
  }
)


def flip_overrides(cfg, key):
  """{dotted key: value} that flips `key` on top of `cfg` (callables resolved against cfg)."""
  _, overrides = SWITCHES[key]
  return {k: (v(cfg) if callable(v) else v) for k, v in overrides.items()}
