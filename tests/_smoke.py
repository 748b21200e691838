"""The runs tests launch in the background (conftest.py starts them at collection) and their helpers."""

import os
import shutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE_STEPS = 30
SMOKE_CKPT_STEPS = (15, 30)
SMOKE_LOG_EVERY = 5
SMOKE_FLAGS = [
  f"--config={os.path.join(ROOT, 'configs', 'smoke.py')}",
  f"--config.total_steps={SMOKE_STEPS}",
  f"--config.log_every_steps={SMOKE_LOG_EVERY}",
  f"--config.ckpt_every_steps={SMOKE_CKPT_STEPS[0]}",
  f"--config.eval.every_steps={SMOKE_STEPS}",
  "--config.eval.max_examples=200",
  "--config.model.depth=2",
  "--config.model.predictor.depth=1",
  "--config.data.batch_size=32",
]


# A narrow one-block model for launched runs whose point is the application (resume, devices), not learning.
TINY_MODEL = [
  "--config.model.width=32",
  "--config.model.depth=1",
  "--config.model.num_heads=2",
  "--config.model.predictor.width=16",
  "--config.model.predictor.depth=1",
  "--config.data.batch_size=16",
]
QUIET = ["--config.eval.every_epochs=0", "--config.best_metric=", "--config.log_every_steps=5"]
# Adam's first steps amplify float noise in near-zero gradients (the reduction order differs across
# devices); a large eps makes updates proportional to the gradient so the comparison is meaningful.
DEVICE_FLAGS = [
  f"--config={os.path.join(ROOT, 'configs', 'smoke.py')}",
  "--config.total_steps=2",
  *TINY_MODEL,
  "--config.optim.eps=1.0",
  "--config.optim.lr=0.1",
  "--config.optim.warmup_steps=0",
  *QUIET,
]
# A run that is interrupted (SIGINT) and resumed must end where this uninterrupted one ends.
RESUME_STEPS = 60  # one-block model: the 50 steps left after step 10 take seconds, time for the signal to land
RESUME_FLAGS = [
  f"--config={os.path.join(ROOT, 'configs', 'smoke.py')}",
  f"--config.total_steps={RESUME_STEPS}",
  "--config.ckpt_every_steps=1000",
  *QUIET,
  *TINY_MODEL,
]
# Training where TensorFlow cannot be imported (tests/no_tensorflow/sitecustomize.py hides it), on the device
# input path: TF_FREE_STEPS steps with checkpoints and an in-training k-NN, then the same command with twice the
# steps resumed in the same WORKDIR, and that longer run uninterrupted. The schedules are constant (no warmup,
# final lr / weight decay / EMA equal to the start), so the resumed run must end where the uninterrupted one does.
NO_TENSORFLOW_ENV = {
  "PYTHONPATH": os.pathsep.join(
    filter(None, [os.path.join(ROOT, "tests", "no_tensorflow"), os.environ.get("PYTHONPATH")])
  )
}
TF_FREE_STEPS = 4
TF_FREE_FLAGS = [
  f"--config={os.path.join(ROOT, 'configs', 'smoke.py')}",
  *TINY_MODEL,
  "--config.data.pipeline=device",
  "--config.data.horizontal_flip=True",
  "--config.data.deit3_strength=1.0",
  f"--config.ckpt_every_steps={TF_FREE_STEPS // 2}",
  f"--config.eval.every_steps={TF_FREE_STEPS}",
  "--config.eval.max_examples=64",
  f"--config.log_every_steps={TF_FREE_STEPS // 2}",
  "--config.optim.warmup_steps=0",
  "--config.optim.final_lr=0.001",  # smoke.py's lr
  "--config.optim.final_weight_decay=0.04",  # the schema's weight_decay
  "--config.ema.end=0.996",  # the schema's ema.start
]
TF_FREE_LONG = [*TF_FREE_FLAGS, f"--config.total_steps={2 * TF_FREE_STEPS}"]
# fixture name -> its jobs (name, flags, forced CPU device count or None[, options]), in start order. Flags go to
# launch/main.py (with --workdir), unless they start with their own program (a script path), see command().
# options: {"env": extra environment variables, "workdir": the job whose WORKDIR this one reuses}.
# launch/benchmark.py --tiny end to end: CIFAR-10 when $HJEPA_CIFAR10_DIR is set (the default recipe), else digits;
# and its micro-benchmark alone where TensorFlow cannot be imported (in it and in every process it starts).
BENCHMARK = os.path.join(ROOT, "launch", "benchmark.py")
BENCH_TRAIN_CONFIG = (
  "configs/smoke.py:dataset=cifar10_local" if os.environ.get("HJEPA_CIFAR10_DIR") else "configs/smoke.py"
)
BENCH_FLAGS = [BENCHMARK, "--tiny", f"--train_config={BENCH_TRAIN_CONFIG}", "--out={workdir}"]
# ... in two interleaved rounds, with a reference step that cannot run the tiny model (the reason is reported)
BENCH_NO_TF_FLAGS = [BENCHMARK, "--tiny", "--skip_train", "--rounds=2", f"--reference={BENCHMARK}", "--out={workdir}"]
# ... a training run planned far past the time left, so the time limit stops it and what it reached is evaluated
BENCH_STOPPED_FLAGS = [BENCHMARK, "--tiny", "--skip_bench", f"--train_config={BENCH_TRAIN_CONFIG}", "--out={workdir}",
                       "--train_budget_s=600", "--budget_s=100", "--eval_reserve_s=99"]  # fmt: skip
# A launch/ tool on a copy of the smoke run (tests/_on_smoke_copy.py): append the tool and its flags.
ON_SMOKE_COPY = (os.path.join(ROOT, "tests", "_on_smoke_copy.py"), "{runs}/smoke", "{workdir}")
BACKGROUND = {
  "smoke_run": [("smoke", SMOKE_FLAGS, None)],
  "evaluated_smoke_run": [
    ("evaluated", [*ON_SMOKE_COPY, "evaluate.py", "--feature_kinds=avgpool"], None),
    # the cheap k-NN of the random init on the same copy (compiles are per feature width)
    (
      "evaluated_init",
      [*ON_SMOKE_COPY, "evaluate.py", "--random_init", "--eval_types=knn"],
      None,
      {"workdir": "evaluated"},
    ),
  ],
  "visualized_smoke_run": [
    ("visualized", [*ON_SMOKE_COPY, "visualize.py", "--num_images=4", "--blocks=0,-1", "--heads=0,1"], None)
  ],
  "device_runs": [("devices_1", DEVICE_FLAGS, None), ("devices_4", DEVICE_FLAGS, 4)],
  "resume_reference": [("resume_reference", RESUME_FLAGS, None)],
  "sigint_run": [("sigint", [os.path.join(ROOT, "tests", "_sigint_job.py"), "{workdir}"], None)],
  "tf_free_runs": [
    ("tf_free", [*TF_FREE_FLAGS, f"--config.total_steps={TF_FREE_STEPS}"], None, {"env": NO_TENSORFLOW_ENV}),
    ("tf_free_resumed", TF_FREE_LONG, None, {"env": NO_TENSORFLOW_ENV, "workdir": "tf_free"}),
    ("tf_free_reference", TF_FREE_LONG, None, {"env": NO_TENSORFLOW_ENV}),
  ],
  "levels_job": [("levels", [os.path.join(ROOT, "tests", "_levels_job.py"), "{workdir}"], 2)],
  "aggressive_run": [("aggressive", [os.path.join(ROOT, "tests", "_aggressive_job.py"), "{workdir}"], None)],
  "benchmark_runs": [
    ("bench_tiny", BENCH_FLAGS, None),
    ("bench_no_tf", BENCH_NO_TF_FLAGS, None, {"env": NO_TENSORFLOW_ENV}),
    ("bench_stopped", BENCH_STOPPED_FLAGS, None),
  ],
}


def run_order(fixturenames):
  """Sort key of a test: 0 when it needs no background job, else 1 + the queue position of the last fixture
  it needs. The in-process tests run first, each waiting test as late as its jobs come: no core idles on a wait."""
  needs = [i for i, name in enumerate(BACKGROUND) if name in fixturenames]
  return 1 + max(needs) if needs else 0


def command(flags, workdir):
  """The arguments after the interpreter for a background job: its own program with "{workdir}" (and "{runs}", the
  folder of every job's workdir) filled in, or
  launch/main.py --workdir=WORKDIR and the flags."""
  if flags and not flags[0].startswith("-"):
    return [f.replace("{workdir}", workdir).replace("{runs}", os.path.dirname(workdir)) for f in flags]
  return [os.path.join(ROOT, "launch", "main.py"), f"--workdir={workdir}", *flags]


FAST_COMPILE_FLAG = "--xla_backend_optimization_level=0"  # set for the test session by conftest.py


def full_speed_env(env):
  """`env` without the test session's fast-compile flag, for launched runs whose speed matters."""
  flags = env.get("XLA_FLAGS", "").replace(FAST_COMPILE_FLAG, "").strip()
  return dict(env, XLA_FLAGS=flags)


def with_xla_flag(env, flag):
  """`env` with one more XLA flag (keeping the session's)."""
  return dict(env, XLA_FLAGS=" ".join(filter(None, [env.get("XLA_FLAGS", ""), flag])))


def copy_run(workdir, dest):
  """A private copy of a run directory, for tests that write into it (evaluations, figures)."""
  shutil.copytree(workdir, dest)
  return str(dest)
