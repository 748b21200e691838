"""Background job (tests/_smoke.BACKGROUND): a launch/ tool, run as a user runs it, on a copy of the shared smoke run.

    python tests/_on_smoke_copy.py SMOKE_WORKDIR WORKDIR TOOL [ARGS...]

copies SMOKE_WORKDIR to WORKDIR/run (once: jobs that share WORKDIR run their tools on the same copy, in queue
order), then becomes `launch/TOOL --workdir=WORKDIR/run ARGS...`; the launcher keeps its output and exit code.
Queued after the smoke run, in a process of its own, so the tool's compiles use the second core.
"""

import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(smoke_workdir, workdir, tool, *args):
  run = os.path.join(workdir, "run")
  if not os.path.isdir(run):
    shutil.copytree(smoke_workdir, run)
  sys.stdout.flush()
  os.execv(sys.executable, [sys.executable, os.path.join(ROOT, "launch", tool), f"--workdir={run}", *args])


if __name__ == "__main__":
  main(*sys.argv[1:])
