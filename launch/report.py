"""Write WORKDIR/report.md again from a run directory: the run in the seed guide's report shape.

    python launch/report.py --workdir=results/conservative [--criteria=conservative]

train.py writes report.md at the end of training; run this after `launch/evaluate.py` so the offline
k-NN, linear probe and collapse diagnostics (WORKDIR/evaluation/results*.json) enter it and the
criteria that need them are ticked. --criteria overrides the run's report.criteria
(conservative | aggressive | none). Reads files only (hjepa_jax/report.py); no device work.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from hjepa_jax import report  # noqa: E402

_WORKDIR = flags.DEFINE_string("workdir", None, "The run directory (what --workdir of launch/main.py was).")
_CRITERIA = flags.DEFINE_enum(
  "criteria", None, report.CRITERIA, "The seed guide's criteria to tick; default: the run's report.criteria."
)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  workdir = _WORKDIR.value
  if not workdir or not os.path.isfile(os.path.join(workdir, "summary.json")):
    print(
      f"error: --workdir={workdir} holds no summary.json: give the directory of a run of launch/main.py that ended",
      file=sys.stderr,
    )
    return 1
  print(report.write_report(workdir, _CRITERIA.value))
  return 0


if __name__ == "__main__":
  app.run(main)
