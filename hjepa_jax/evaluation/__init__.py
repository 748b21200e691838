"""Evaluation of frozen features: k-NN, linear probe, few-shot and collapse diagnostics.

Pure functions on arrays (no data loading, no model code), so they can run on
features extracted by any backbone, during training or offline.
"""

from hjepa_jax.evaluation.diagnostics import (
  collapse_report,
  effective_rank,
  feature_entropy,
  feature_std,
  rank_ratio,
)
from hjepa_jax.evaluation.fewshot import fewshot_episodes, ridge_fewshot
from hjepa_jax.evaluation.knn import knn_classify, knn_predict
from hjepa_jax.evaluation.linear_probe import linear_probe

__all__ = [
  "knn_classify",
  "knn_predict",
  "linear_probe",
  "fewshot_episodes",
  "ridge_fewshot",
  "feature_std",
  "effective_rank",
  "rank_ratio",
  "feature_entropy",
  "collapse_report",
]
