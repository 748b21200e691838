"""Evaluate a pretraining run on frozen features: k-NN, linear probe, few-shot, collapse diagnostics.

    python launch/evaluate.py --workdir=results/conservative [--step=N | --best] \
        [--eval_types=all|knn,linear_probe,fewshot,features] [--dataset=cifar10 [--data_dir=DIR]] \
        [--random_init | --encoder=online] \
        [--max_examples=N] [--feature_kinds=avgpool,last4,level1] [--batch_size=256]

Writes WORKDIR/evaluation/results.json and results.md (results_online.* with --encoder=online,
results_random_init.* with --random_init) and prints the table; results.md shows the target encoder
beside the online one and the random init once those are written.
"""

import logging as std_logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from hjepa_jax import cli, platform  # noqa: E402

_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory of launch/main.py (config.json, checkpoints/).")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step to evaluate (default: the newest).")
_BEST = flags.DEFINE_bool("best", False, "Evaluate WORKDIR/best/, the best checkpoint by the run's best_metric.")
_EVAL_TYPES = flags.DEFINE_list("eval_types", ["all"], "all, or a subset of knn,linear_probe,fewshot,features.")
_DATASET = flags.DEFINE_string(
  "dataset",
  None,
  "Labelled dataset to evaluate on (default: the run's data.eval_dataset): one of hjepa_jax.data.DATASET_NAMES "
  "(cifar10, cifar10_local, cifar100_local, stl10, stl10_local, fashion_mnist_local, imagenet100, image_folder, ...).",
)
_DATA_DIR = flags.DEFINE_string(
  "data_dir",
  None,
  "Folder of --dataset (default: the run's data.<key> for it, e.g. data.image_folder.dir, data.cifar10_dir).",
)
_RANDOM_INIT = flags.DEFINE_bool(
  "random_init",
  False,
  "Evaluate the run's step-0 encoder (same architecture and "
  "seed) instead of a checkpoint: the baseline to compare against.",
)
_ENCODER = flags.DEFINE_enum(
  "encoder",
  "target",
  ["target", "online"],
  "Encoder of the checkpoint to evaluate: target (the EMA encoder, I-JEPA's choice) or online (the context encoder).",
)
_MAX_EXAMPLES = flags.DEFINE_integer(
  "max_examples",
  None,
  "Images per split, a fixed random subset (default: the run's data.eval_max_examples, unset = whole splits).",
)
_FEATURE_KINDS = flags.DEFINE_list(
  "feature_kinds",
  ["avgpool", "last4"],
  "Features every evaluation runs on: "
  "avgpool (mean of the last layer's tokens) and/or last4 (the last 4 blocks' "
  "mean tokens, concatenated) and/or levelK (K = 1, 2, 3: "
  "the mean token of each 2^K x 2^K patch cell of hierarchy level K, concatenated).",
)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 256, "Images per feature-extraction batch.")
flags.mark_flag_as_required("workdir")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  platform.hide_gpus_from_tensorflow()
  std_logging.getLogger("absl").setLevel(std_logging.WARNING)  # orbax logs every restore detail at INFO
  from hjepa_jax.evaluation import runner  # noqa: E402  (after TF is kept off the GPU)

  with cli.user_errors(runner.EvaluationError, FileNotFoundError):  # anything else is a bug: its traceback
    results = runner.evaluate_run(
      _WORKDIR.value,
      step=_STEP.value,
      best=_BEST.value,
      eval_types=_EVAL_TYPES.value,
      dataset=_DATASET.value,
      data_dir=_DATA_DIR.value,
      random_init=_RANDOM_INIT.value,
      encoder=_ENCODER.value,
      max_examples=_MAX_EXAMPLES.value,
      batch_size=_BATCH_SIZE.value,
      feature_kinds=_FEATURE_KINDS.value,
    )
  where = dict(random_init=results["random_init"], encoder=_ENCODER.value)
  with open(runner.results_path(_WORKDIR.value, ext="md", **where)) as f:
    print(f.read(), end="")
  print(f"saved {runner.results_path(_WORKDIR.value, **where)}")


if __name__ == "__main__":
  platform.tune_host()  # XLA:CPU flags and huge-page malloc (restarts once) where they help
  cli.run(main)
