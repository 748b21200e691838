"""Which encoder is evaluated: target (EMA), online (context) or the step-0 init, in training and offline.

In-process on a tiny digits model and a checkpoint written here (no launched run): the online encoder
is perturbed away from the target so every number can be traced to the params it came from.
"""

import json
import os

import jax
import numpy as np
import pytest

from hjepa_jax import checkpoint as ckpt_lib
from hjepa_jax import experiment
from hjepa_jax.config import ConfigError
from hjepa_jax.evaluation import runner
from hjepa_jax.evaluation.online import OnlineEvaluator
from hjepa_jax.optim import make_optimizer
from hjepa_jax.platform import Platform
from hjepa_jax.train_step import init_state
from tests._core import tiny_config

CPU = Platform(backend="cpu", device_kind="cpu", num_devices=1, process_count=1)
EVAL = {"eval.max_examples": 120, "eval.knn_ks": (1, 20), "eval.every_steps": 10}


def _state(cfg, seed_shift=1):
  """A train state whose target is the step-0 encoder and whose online encoder was moved away from it."""
  exp, reader = experiment.prepare(cfg, CPU)
  spec = exp.step_spec
  init_rng, _ = experiment.init_rngs(exp.seed)
  tx = make_optimizer(spec.optim, jax.eval_shape(spec.model.init, init_rng))
  state = init_state(spec.model, tx, init_rng)
  other = spec.model.init(jax.random.PRNGKey(exp.seed + seed_shift))["encoder"]
  state["params"]["encoder"] = other
  return exp, reader, state


@pytest.fixture(scope="module")
def evaluated():
  cfg = tiny_config(**{**EVAL, "eval.encoders": ("target", "online", "init")})
  exp, reader, state = _state(cfg)
  evaluator = OnlineEvaluator(exp.step_spec.model, reader.data, exp.eval)
  return evaluator, state, evaluator(state)


def test_in_training_eval_reports_each_encoder(evaluated):
  evaluator, state, metrics = evaluated
  for prefix in ("eval/", "eval/online/", "eval/init/"):
    for name in ("knn_top1_k1", "knn_top1_k20", "feature_std", "effective_rank", "collapsed"):
      assert np.isfinite(metrics[prefix + name]), prefix + name
  assert metrics["eval/knn_top1_k20"] == evaluator.score(state["target"])["knn_top1_k20"]
  assert metrics["eval/online/effective_rank"] == evaluator.score(state["params"]["encoder"])["effective_rank"]
  # The target here is the step-0 encoder, so it scores exactly what the init does; the online one does not.
  assert metrics["eval/init/feature_std"] == metrics["eval/feature_std"]
  assert metrics["eval/online/feature_std"] != metrics["eval/feature_std"]


def test_init_is_scored_once(evaluated):
  evaluator, state, metrics = evaluated
  calls = []
  score = evaluator.score
  evaluator.score = lambda p: calls.append(1) or score(p)
  try:
    again = evaluator(state)
  finally:
    del evaluator.score
  assert len(calls) == 2 and again == metrics  # target and online; the init is cached


def test_eval_encoders_and_best_metric_are_checked():
  exp, _ = experiment.prepare(tiny_config(**{**EVAL, "best_metric": "eval/online/knn_top1_k20"}), CPU)
  assert exp.eval.encoders == ("target", "online")  # the schema default
  for overrides, key in (
    ({"eval.encoders": ("ema",)}, "eval.encoders"),
    ({"eval.encoders": ("target", "target")}, "eval.encoders"),
    ({"eval.encoders": ("online",), "best_metric": "eval/knn_top1_k20"}, "best_metric"),
    ({"best_metric": "eval/init/knn_top1_k20"}, "best_metric"),
  ):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
      experiment.prepare(tiny_config(**{**EVAL, **overrides}), CPU)


def test_offline_evaluation_of_the_online_encoder(tmp_path):
  cfg = tiny_config(**EVAL)
  _, _, state = _state(cfg)
  workdir = str(tmp_path / "run")
  os.makedirs(workdir)
  with open(os.path.join(workdir, "config.json"), "w") as f:
    f.write(cfg.to_json_best_effort(indent=2))
  ckpt = ckpt_lib.Checkpointer(workdir, keep=1)
  ckpt.save(7, state)
  ckpt.close()

  model = experiment.model(cfg)
  for encoder, key in (("target", "target"), ("online", None)):
    step, params, source = runner.encoder_params(
      model, cfg, workdir, step=None, best=False, random_init=False, encoder=encoder
    )
    want = state["target"] if key else state["params"]["encoder"]
    assert step == 7 and source == f"checkpoints/7 ({encoder} encoder)"
    jax.tree_util.tree_map(np.testing.assert_array_equal, jax.device_get(params), jax.device_get(want))
  with pytest.raises(runner.EvaluationError, match="drop --encoder"):
    runner.encoder_params(model, cfg, workdir, step=None, best=False, random_init=True, encoder="online")

  common = dict(eval_types="knn", feature_kinds="avgpool", max_examples=120)
  for kwargs in (dict(encoder="online"), dict(random_init=True), dict()):
    runner.evaluate_run(workdir, **common, **kwargs)
  with open(runner.results_path(workdir, encoder="online")) as f:
    online = json.load(f)
  assert online["encoder"] == "online" and online["source"].endswith("(online encoder)")
  with open(runner.results_path(workdir, ext="md")) as f:
    md = f.read()
  assert "| metric | avgpool | avgpool online | avgpool random init |" in md
  with open(runner.results_path(workdir, ext="md", encoder="online")) as f:
    assert "| metric | avgpool online | avgpool random init |" in f.read()
