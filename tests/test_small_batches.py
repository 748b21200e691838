"""A batch smaller than what the run draws for display still trains (issue 23: --config.data.batch_size=1).

Nothing in the update needs more than one image: the position-only floor of the loss is skipped below two
images (train_step.py), batch_min mask capacities of one image are the image's own sizes, VICReg divides by
max(n - 1, 1), and the in-training k-NN embeds the labelled splits in eval.batch_size chunks, not the training
batch. What did need four was the TensorBoard image of the masks (log_mask_images, at the first step): it drew
masks for 4 images and overlaid them on the first 4 images of the host's batch, so a batch of 1 to 3 images
(or a small batch split over many hosts) ended in an IndexError after the first step compiled.
"""

from hjepa_jax import train
from tests._core import tiny_config


def test_a_batch_of_one_trains_with_mask_images(tmp_path):
  workdir = str(tmp_path / "one")
  train.train_and_evaluate(tiny_config(**{"data.batch_size": 1, "total_steps": 2, "log_every_steps": 1}), workdir)
  with open(f"{workdir}/logs/training.log") as f:
    log = f.read()
  assert "training finished at step 2" in log and "1 images per update" in log, log[-2000:]
