"""jsonfile: the one reader and writer of small run files (summary, scores, requests, reports)."""

import os

from hjepa_jax import jsonfile


def test_round_trip_creates_the_folder_and_leaves_no_temporary(tmp_path):
  path = str(tmp_path / "a" / "b.json")
  jsonfile.write(path, {"x": [1, 2.5], "y": None})
  assert jsonfile.read(path) == {"x": [1, 2.5], "y": None}
  assert os.listdir(tmp_path / "a") == ["b.json"]
  assert open(path).read().endswith("}\n")


def test_absent_or_damaged_files_read_as_none(tmp_path):
  assert jsonfile.read(str(tmp_path / "missing.json")) is None
  damaged = tmp_path / "half.json"
  damaged.write_text('{"step": 12')  # what a kill mid-write used to leave
  assert jsonfile.read(str(damaged)) is None


def test_a_failed_write_keeps_the_previous_file(tmp_path):
  path = str(tmp_path / "summary.json")
  jsonfile.write(path, {"step": 1})
  try:
    jsonfile.write(path, {"step": object()})  # not serialisable: fails before the rename
  except TypeError:
    pass
  assert jsonfile.read(path) == {"step": 1}
