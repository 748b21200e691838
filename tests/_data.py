"""Fixtures shared by the data tests."""
import pytest

import hjepa_jax.data as data


@pytest.fixture(autouse=True)
def fresh_cache():
  """Every test starts and ends with an empty dataset cache, so no test sees another's arrays."""
  data.clear_cache()
  yield
  data.clear_cache()
