"""Fast evaluation inside the training loop: k-NN and collapse diagnostics on a fixed subset.

Each call scores the encoders of `eval.encoders`: the target (EMA) encoder, the one I-JEPA
evaluates, under "eval/..."; the online (context) encoder under "eval/online/..." (in a short run
the target lags far behind it, so both are worth seeing); and the run's step-0 encoder under
"eval/init/...", the random-init baseline, scored once and repeated at every evaluation so a curve
has its reference beside it.
"""

import logging

from hjepa_jax import experiment
from hjepa_jax.evaluation.diagnostics import collapse_report
from hjepa_jax.evaluation.features import extract_features, make_feature_fn
from hjepa_jax.evaluation.knn import knn_classify

_DIAGNOSTICS = ("feature_std", "effective_rank", "rank_ratio", "feature_entropy")


def encoder_of(state, name):
  """The encoder params `name` ("target" or "online") of a train state."""
  return state["target"] if name == "target" else state["params"]["encoder"]


class OnlineEvaluator:
  """Loads the labelled subsets once; each call embeds them with every encoder of `schedule.encoders`."""

  def __init__(self, model, data_cfg, schedule):
    from hjepa_jax import data as data_lib  # pylint: disable=g-import-not-at-top (TensorFlow)

    self.model = model
    self.schedule = schedule
    name = data_cfg.eval_dataset
    self.num_classes = data_lib.num_classes(name, data_cfg)
    self.splits = {
      role: data_lib.load_labelled(
        name, split, data_cfg, image_size=model.image_size, max_examples=schedule.max_examples
      )
      for role, split in (("train", data_cfg.eval_split_train), ("test", data_cfg.eval_split_test))
    }
    self.feature_fn = make_feature_fn(model)
    self._init_metrics = None
    logging.info(
      "online eval on %s: %d train / %d test images, encoders %s",
      name,
      len(self.splits["train"][0]),
      len(self.splits["test"][0]),
      ", ".join(schedule.encoders),
    )

  def features(self, enc_params):
    return {
      role: extract_features(self.feature_fn, enc_params, images, self.schedule.batch_size)["avgpool"]
      for role, (images, _) in self.splits.items()
    }

  def score(self, enc_params):
    """{metric: value} of one encoder's features: k-NN top-1 per k and the collapse diagnostics."""
    feats = self.features(enc_params)
    out = knn_classify(
      feats["train"],
      self.splits["train"][1],
      feats["test"],
      self.splits["test"][1],
      num_classes=self.num_classes,
      ks=self.schedule.knn_ks,
    )
    report = collapse_report(feats["test"])
    out.update({k: report[k] for k in _DIAGNOSTICS})
    out["collapsed"] = float(report["collapsed"])
    return {k: float(v) for k, v in out.items()}

  def _init_scores(self):
    if self._init_metrics is None:
      init_rng, _ = experiment.init_rngs(self.schedule.seed)  # exactly train.py's initialisation
      self._init_metrics = self.score(self.model.init(init_rng)["encoder"])
    return self._init_metrics

  def __call__(self, state):
    """{"eval/...": value} for a train state {"target", "params": {"encoder"}, ...}."""
    out = {}
    for name in self.schedule.encoders:
      metrics = self._init_scores() if name == "init" else self.score(encoder_of(state, name))
      out.update({experiment.eval_prefix(name) + k: v for k, v in metrics.items()})
    return out
