"""Ablate feature switches: short runs of a base config, each with one switch flipped, then k-NN.

    python launch/ablate.py --config=configs/smoke.py --workdir=results/ablate --steps=200 \
        [--switches=model.rope,loss.contrastive.weight,...] [--eval_examples=1000] [--flags=--config.x=y,...]

Writes WORKDIR/ablation.md (switch, what was set, loss, k-NN top-1 at k=20, step time, peak
memory) and WORKDIR/ablation.json, and prints the table. Default switches: every switch of
hjepa_jax/switches.py this backend can run (attention_impl=cudnn only on CUDA).
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from hjepa_jax import cli, switches  # noqa: E402

_CONFIG = flags.DEFINE_string("config", None, "Base config file (configs/*.py[:arg]).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder: one run directory per switch, ablation.md/json.")
_STEPS = flags.DEFINE_integer("steps", 200, "Training steps per run.")
_SWITCHES = flags.DEFINE_list("switches", None, "Switch keys to flip (default: all this backend can run).")
_EVAL_EXAMPLES = flags.DEFINE_integer("eval_examples", 1000, "Images per split for the k-NN evaluation.")
_FLAGS = flags.DEFINE_list("flags", [], "Extra --config.* flags for every run (e.g. a dataset directory).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  import jax  # pylint: disable=g-import-not-at-top
  from hjepa_jax import ablation  # pylint: disable=g-import-not-at-top

  with cli.user_errors():
    config = cli.load(_CONFIG.value)
  keys = _SWITCHES.value
  if keys is None:
    cuda = jax.default_backend().lower() in ("cuda", "gpu")
    keys = [k for k, (kind, _) in switches.SWITCHES.items() if kind != "platform" or cuda]
  os.makedirs(_WORKDIR.value, exist_ok=True)
  rows = ablation.ablate(
    _CONFIG.value, config, _WORKDIR.value, keys, _STEPS.value, _EVAL_EXAMPLES.value, extra_flags=_FLAGS.value
  )
  header = (
    f"Ablation of `{_CONFIG.value}`, {_STEPS.value} steps per run, k-NN on {_EVAL_EXAMPLES.value} "
    f"images per split; backend {jax.default_backend()} ({jax.devices()[0].device_kind}).\n\n"
  )
  table = header + ablation.format_table(rows)
  with open(os.path.join(_WORKDIR.value, "ablation.md"), "w") as f:
    f.write(table)
  with open(os.path.join(_WORKDIR.value, "ablation.json"), "w") as f:
    json.dump(rows, f, indent=2, default=str)
  print(table)
  if any("error" in r for r in rows):
    sys.exit("some runs failed; see the table")


if __name__ == "__main__":
  from hjepa_jax.platform import tune_host

  tune_host()  # XLA:CPU flags and huge-page malloc (restarts once) where they help
  app.run(main)
