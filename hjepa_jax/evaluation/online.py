"""Fast evaluation inside the training loop: k-NN and collapse diagnostics on a fixed subset."""

import logging

from hjepa_jax.evaluation.diagnostics import collapse_report
from hjepa_jax.evaluation.features import extract_features, make_feature_fn
from hjepa_jax.evaluation.knn import knn_classify


class OnlineEvaluator:
  """Loads the labelled subsets once; each call embeds them with the target encoder."""

  def __init__(self, model, data_cfg, schedule):
    from hjepa_jax import data as data_lib  # pylint: disable=g-import-not-at-top (TensorFlow)

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
    logging.info(
      "online eval on %s: %d train / %d test images", name, len(self.splits["train"][0]), len(self.splits["test"][0])
    )

  def features(self, enc_params):
    return {
      role: extract_features(self.feature_fn, enc_params, images, self.schedule.batch_size)["avgpool"]
      for role, (images, _) in self.splits.items()
    }

  def __call__(self, enc_params):
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
    out.update({k: report[k] for k in ("feature_std", "effective_rank", "rank_ratio", "feature_entropy")})
    out["collapsed"] = float(report["collapsed"])
    return {f"eval/{k}": float(v) for k, v in out.items()}
