"""Background job of tests/test_switches.py (tests/_smoke.BACKGROUND): configs/aggressive.py with every phase 1-3
feature on (FPN, contrastive two views, accumulation, remat, LayerScale, 3-Augment) trains 3 steps on a generated
ImageNet-100 folder layout; 96 px and a narrow two-block model keep its compile short (the features together, not
the size, are the point). Writes WORKDIR/facts.json for the test to check.

A process of its own so its compile runs on the second core while the in-process tests use the first.
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from hjepa_jax import config as config_lib  # noqa: E402
from hjepa_jax import experiment, jsonfile, train  # noqa: E402
from hjepa_jax.platform import Platform  # noqa: E402
from tests import _data as fake_data  # noqa: E402


def main(workdir):
  fake_data.write_fake_imagenet(
    os.path.join(workdir, "imagenet"), class_indices=(0, 1, 2, 3), per_class=8, size=(112, 112)
  )
  cfg = config_lib.load_config(os.path.join(ROOT, "configs", "aggressive.py"), "model=Ti/16")
  cfg.data.imagenet100_dir = os.path.join(workdir, "imagenet")
  cfg.data.image_size, cfg.data.batch_size = 96, 4
  cfg.model.width, cfg.model.num_heads, cfg.model.depth = 64, 2, 2
  cfg.model.predictor.width, cfg.model.predictor.depth, cfg.model.predictor.num_heads = 32, 1, 2
  cfg.model.fpn.feature_dim, cfg.model.projector.hidden_dim, cfg.model.projector.dim = 32, 64, 32
  cfg.total_steps, cfg.log_every_steps, cfg.eval.every_epochs, cfg.best_metric = 3, 1, 0.0, ""
  exp, _ = experiment.prepare(cfg, Platform(backend="cpu", device_kind="cpu", num_devices=1, process_count=1))
  run = os.path.join(workdir, "run")
  last = train.train_and_evaluate(cfg, run)
  facts = {
    "global_batch": exp.global_batch,
    "fpn": exp.step_spec.model.fpn is not None,
    "views": bool(exp.step_spec.views.enabled),
    "last": {k: float(v) for k, v in last.items()},
    "checkpoints": sorted(os.listdir(os.path.join(run, "checkpoints"))),
  }
  jsonfile.write(os.path.join(workdir, "facts.json"), facts)  # atomic, and makes the folder


if __name__ == "__main__":
  main(sys.argv[1])
