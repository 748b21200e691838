"""Where an offline evaluation's results are in a run's workdir: WORKDIR/evaluation/results.EXT (target encoder),
results_online.EXT, results_random_init.EXT.

A leaf (plain Python, no JAX): `runner.py` writes these files, `report.py` reads them without importing the runner.
"""

import os

RESULTS, BASELINE = "results", "results_random_init"


def results_path(workdir, random_init=False, ext="json", encoder="target"):
  """WORKDIR/evaluation/results.EXT (target), results_online.EXT, results_random_init.EXT."""
  name = BASELINE if random_init else (RESULTS if encoder == "target" else f"{RESULTS}_{encoder}")
  return os.path.join(workdir, "evaluation", f"{name}.{ext}")
