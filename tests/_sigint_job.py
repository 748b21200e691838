"""Background job of tests/test_train_app.py (tests/_smoke.BACKGROUND): a run of tests/_smoke.RESUME_FLAGS stopped by
SIGINT once it has logged step 10, then the same command again (the resume). Writes WORKDIR/sigint.json:
{"first": [returncode, output tail], "checkpoints_after_stop": [steps], "second": [returncode, output tail]}; the
run itself is WORKDIR/run, for the test to compare with the uninterrupted reference.

A process of its own, queued with the launched runs, so both sessions compile on the second core.
"""

import os
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from hjepa_jax import jsonfile  # noqa: E402
from tests._smoke import RESUME_FLAGS, RESUME_STEPS  # noqa: E402

MAIN = os.path.join(ROOT, "launch", "main.py")


def main(workdir):
  run = os.path.join(workdir, "run")
  cmd = [sys.executable, MAIN, f"--workdir={run}", *RESUME_FLAGS]
  proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  log = os.path.join(run, "logs", "training.log")
  deadline = time.time() + 300
  while time.time() < deadline and not (os.path.exists(log) and f"step 10/{RESUME_STEPS}" in open(log).read()):
    time.sleep(0.05)
  proc.send_signal(signal.SIGINT)
  out, _ = proc.communicate(timeout=300)
  facts = {"first": [proc.returncode, out[-3000:]]}
  ckpts = os.path.join(run, "checkpoints")
  facts["checkpoints_after_stop"] = (
    sorted(int(n) for n in os.listdir(ckpts) if n.isdigit()) if os.path.isdir(ckpts) else []
  )
  second = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
  facts["second"] = [second.returncode, (second.stdout + second.stderr)[-3000:]]
  jsonfile.write(os.path.join(workdir, "sigint.json"), facts)  # atomic, and makes the folder


if __name__ == "__main__":
  main(sys.argv[1])
