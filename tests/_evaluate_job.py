"""Background job of tests/test_evaluate.py (tests/_smoke.BACKGROUND): a copy of the shared smoke run, evaluated by
launch/evaluate.py as a user runs it: every evaluation on one feature kind, then the cheap k-NN of the random
init (compiles are per feature width). Writes WORKDIR/outputs.json: {"trained" | "random_init": [code, output]}.

Queued after the smoke run, in a process of its own, so its compiles use the second core.
"""

import json
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EVALUATE = os.path.join(ROOT, "launch", "evaluate.py")


def main(smoke_workdir, workdir):
  run = os.path.join(workdir, "run")
  shutil.copytree(smoke_workdir, run)
  outputs = {}
  for name, flags in (("trained", ["--feature_kinds=avgpool"]), ("random_init", ["--random_init", "--eval_types=knn"])):
    proc = subprocess.run(
      [sys.executable, EVALUATE, f"--workdir={run}", *flags],
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
    )
    outputs[name] = [proc.returncode, proc.stdout]
  with open(os.path.join(workdir, "outputs.json"), "w") as f:
    json.dump(outputs, f)


if __name__ == "__main__":
  main(*sys.argv[1:])
