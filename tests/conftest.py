"""Test-session settings: CPU only, and one persistent XLA compilation cache for the session and its subprocesses.

CPU compiles dominate this suite's time. Launched runs (launch/main.py, launch/evaluate.py) compile
the same small programs again and again; with the cache they load them instead. The cache lives in
`.jax_test_cache/` at the repository root (git-ignored; cold in a fresh clone, warm on a rerun) or in
$HJEPA_TEST_JAX_CACHE. Entries are keyed by program, jax version and flags, so a stale hit is not possible.
"""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.environ.get("HJEPA_TEST_JAX_CACHE") or os.path.join(ROOT, ".jax_test_cache")

# Subprocesses inherit these; this process reads them when jax is first imported (below).
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["JAX_COMPILATION_CACHE_DIR"] = CACHE
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"

import jax  # noqa: E402  pylint: disable=g-import-not-at-top

jax.config.update("jax_compilation_cache_dir", CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
