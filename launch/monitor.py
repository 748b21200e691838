"""Watch a run: one status line (step, epoch, loss, throughput, ETA, memory, last eval) and alerts.

    python launch/monitor.py results/conservative [--follow] [--interval=30] [--epoch_budget_min=12]

Alerts follow the critical-metrics table in hjepa_jax/tools/monitor.py (feature std < 0.1
warning / < 0.05 critical, grad norm > 5 / > 50, loss rising, time per epoch over budget, no log
line for long). Reads only WORKDIR/logs/training.log (no TensorFlow, no device work), so it costs
next to nothing beside the training process. --follow repeats every --interval seconds until the run finishes,
stops or fails. Exit status 2 when the last check raised a CRITICAL alert, else 0.
"""

import datetime
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from hjepa_jax.tools import monitor  # noqa: E402

_FOLLOW = flags.DEFINE_bool("follow", False, "Keep printing a status every --interval seconds until the run ends.")
_INTERVAL = flags.DEFINE_float("interval", 30.0, "Seconds between checks with --follow.")
_BUDGET = flags.DEFINE_float(
  "epoch_budget_min", 12.0, "Warn when one epoch takes longer than this (minutes); 0 disables the check."
)


def report(workdir, epoch_budget_min):
  """(text, run log, alerts) of one check of `workdir`."""
  log_path = os.path.join(workdir, "logs", "training.log")
  if not os.path.isfile(log_path):
    raise FileNotFoundError(
      f"{log_path} not found: is {workdir} a run directory of launch/main.py, and has the run started?"
    )
  log = monitor.read_log(workdir)
  now = datetime.datetime.now()
  pid = monitor.find_training_process(workdir) if log.state == "running" else None
  line = monitor.status_line(log, os.path.basename(os.path.abspath(workdir)), monitor.process_memory_gib(pid), now=now)
  alerts = monitor.check(log, epoch_budget_min or None, now=now)
  stamp = now.strftime("%H:%M:%S")
  return "\n".join([f"[{stamp}] {line}"] + [f"  {a}" for a in alerts]), log, alerts


def main(argv):
  if len(argv) != 2:
    raise app.UsageError("usage: monitor.py RUN_DIR [--follow] [--interval=30] [--epoch_budget_min=12]")
  workdir = argv[1]
  try:
    while True:
      try:
        text, log, alerts = report(workdir, _BUDGET.value)
      except FileNotFoundError:
        if not _FOLLOW.value:
          raise
        print(f"waiting for {os.path.join(workdir, 'logs', 'training.log')}", flush=True)
        time.sleep(max(_INTERVAL.value, 1.0))
        continue
      print(text, flush=True)
      if not _FOLLOW.value or log.state in ("finished", "stopped", "failed"):
        break
      time.sleep(max(_INTERVAL.value, 1.0))
  except FileNotFoundError as e:
    sys.exit(f"error: {e}")
  except KeyboardInterrupt:
    return 0
  return 2 if any(a.level == "CRITICAL" for a in alerts) else 0


if __name__ == "__main__":
  app.run(main)
