"""Small run files (summaries, scores, requests, reports), written whole or not at all.

A run can be killed at any instruction, and the instruments that read its files (the report, the
paired comparison, the benchmark driver, the evaluation baseline) run beside training. So every
writer goes through a temporary file and a rename (a reader sees the old file or the new one,
never half of one), and the one reader treats an absent or damaged file as absent: each caller
says what absence means for it.
"""

import json
import os


def read(path):
  """The parsed JSON at `path`, or None when it is absent, unreadable or not JSON."""
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def write_text(path, text):
  """Write `text` to `path` through a temporary file and a rename; creates the folder."""
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  tmp = f"{path}.tmp"
  with open(tmp, "w") as f:
    f.write(text)
  os.replace(tmp, path)


def write(path, data, **dump_kwargs):
  """`data` as indented JSON (one trailing newline) at `path`, atomically; dump_kwargs go to json.dumps."""
  write_text(path, json.dumps(data, indent=2, **dump_kwargs) + "\n")
