"""Evaluation of frozen features: k-NN, linear probe, few-shot and collapse diagnostics.

Pure functions on arrays (no data loading, no model code), so they can run on
features extracted by any backbone, during training or offline.

Importing this package is cheap: JAX is imported only when one of the functions below is first requested,
so plain-Python modules (`results.py`, read by the run report) live here without paying for it. The linear
probe is `hjepa_jax.evaluation.linear_probe.linear_probe`: a lazy package attribute cannot share its submodule's
name (once the submodule is imported, the attribute is the module).
"""

from hjepa_jax import lazy
from typing import TYPE_CHECKING

_LAZY = {
  "collapse_report": "hjepa_jax.evaluation.diagnostics",
  "effective_rank": "hjepa_jax.evaluation.diagnostics",
  "feature_entropy": "hjepa_jax.evaluation.diagnostics",
  "feature_std": "hjepa_jax.evaluation.diagnostics",
  "rank_ratio": "hjepa_jax.evaluation.diagnostics",
  "fewshot_episodes": "hjepa_jax.evaluation.fewshot",
  "ridge_fewshot": "hjepa_jax.evaluation.fewshot",
  "knn_classify": "hjepa_jax.evaluation.knn",
  "knn_predict": "hjepa_jax.evaluation.knn",
}

if TYPE_CHECKING:
  from hjepa_jax.evaluation.diagnostics import (
    collapse_report,
    effective_rank,
    feature_entropy,
    feature_std,
    rank_ratio,
  )
  from hjepa_jax.evaluation.fewshot import fewshot_episodes, ridge_fewshot
  from hjepa_jax.evaluation.knn import knn_classify, knn_predict

__all__ = [
  "knn_classify",
  "knn_predict",
  "fewshot_episodes",
  "ridge_fewshot",
  "feature_std",
  "effective_rank",
  "rank_ratio",
  "feature_entropy",
  "collapse_report",
]


__getattr__, __dir__ = lazy.attributes(__name__, _LAZY)
