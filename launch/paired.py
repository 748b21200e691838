"""Paired multi-seed comparison: variants x seeds of one base config at one budget, scored offline, with intervals.

    python launch/paired.py --config=configs/cifar10.py:cpu,epochs=4 --workdir=results/paired \
        --variant=h2= --variant="ijepa=loss.num_hierarchies=1 loss.hierarchy_weights=(1.0,)" \
        [--seeds=0,1,2] [--baseline=h2] [--steps=N] [--encoders=target,online] [--feature_kinds=avgpool] \
        [--scores_dir=results/paired_scores] [--flags=--config.x=y,...] [--nice=10] [--report_only]

A variant is NAME=key=value key2=value2 (dotted config keys, python literals; NAME= is the base config). Runs
go seed-major (seed 0 of every variant first) into WORKDIR/<variant>/seed<k>; rerunning the same command
resumes: scored runs are skipped, finished ones only scored, others resumed from their checkpoints. Each run is
scored on the whole train split (the k-NN bank) and the whole test split. Writes WORKDIR/paired.md, paired.png
and paired.json (and into --scores_dir, with one small JSON per run there: commit it, and --report_only
rebuilds the table from it on any machine), prints the markdown, and exits 1 when a run failed.

--guide adds the seed guide's feature table as variants (hjepa_jax/buys.py: the base recipe, named by
--baseline or "base", then one variant per feature); launch/buys.py renders docs/switch_buys.md from the scores.
"""

import functools
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from hjepa_jax import buys, cli, paired  # noqa: E402

_CONFIG = flags.DEFINE_string("config", None, "Base config file (configs/*.py[:arg]); not needed with --report_only.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder: WORKDIR/<variant>/seed<k> run directories, paired.*.")
_VARIANT = flags.DEFINE_multi_string(
  "variant", [], "NAME=key=value key2=value2 (repeat the flag per variant; NAME= runs the base config)."
)
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds, each run by every variant (--config.seed).")
_BASELINE = flags.DEFINE_string("baseline", None, "The variant the others are compared with (default: the first).")
_STEPS = flags.DEFINE_integer("steps", None, "Training steps per run (default: the config's own epochs).")
_ENCODERS = flags.DEFINE_list("encoders", ["target"], "Encoders to score: target (EMA) and/or online.")
_FEATURE_KINDS = flags.DEFINE_list("feature_kinds", ["avgpool"], "Feature kinds to score (launch/evaluate.py's).")
_HEADLINE = flags.DEFINE_list(
  "headline", None, "Metrics of the headline table and figure (default: target/avgpool k-NN@20 and linear probe)."
)
_SCORES_DIR = flags.DEFINE_string(
  "scores_dir", None, "Committable folder: <variant>/seed<k>.json per run and paired.md/png/json."
)
_FLAGS = flags.DEFINE_list("flags", [], "Extra --config.* flags for every run (e.g. a dataset directory).")
_NICE = flags.DEFINE_integer("nice", 0, "Niceness of the training and scoring processes (0: as this one).")
_GUIDE = flags.DEFINE_bool(
  "guide", False, "Add the seed guide's feature rows (hjepa_jax/buys.py) as variants, after the base recipe."
)
_REPORT_ONLY = flags.DEFINE_bool(
  "report_only", False, "Train and score nothing: rebuild the report from the scores (WORKDIR and/or --scores_dir)."
)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  out, scores_dir = _WORKDIR.value, _SCORES_DIR.value
  log = functools.partial(print, flush=True)
  with cli.user_errors(paired.PairedError):
    if not out and not (_REPORT_ONLY.value and scores_dir):
      raise paired.PairedError("give --workdir (or --report_only with --scores_dir)")
    variants = [paired.parse_variant(v) for v in _VARIANT.value]
    if _GUIDE.value:
      variants += [
        g for g in buys.guide_variants(_BASELINE.value or "base") if g.name not in {v.name for v in variants}
      ]
    try:
      seeds = [int(s) for s in _SEEDS.value]
    except ValueError:
      raise paired.PairedError(f"--seeds={','.join(_SEEDS.value)}: give integers, e.g. --seeds=0,1,2") from None
    unknown = sorted(set(_ENCODERS.value) - set(paired.ENCODERS))
    if unknown or not _ENCODERS.value:
      raise paired.PairedError(f"--encoders: use target and/or online, not {unknown or 'nothing'}")
    request = None
    if _REPORT_ONLY.value:
      found_variants, found_seeds = paired.discover(out, scores_dir)
      variants = variants or found_variants
      seeds = seeds if flags.FLAGS["seeds"].present else found_seeds
      baseline = paired.check_variants(variants, _BASELINE.value)
    else:
      if not _CONFIG.value:
        raise paired.PairedError("give --config (the base config of every run)")
      config = cli.load(_CONFIG.value)
      baseline = paired.check_variants(variants, _BASELINE.value)
      for v in variants:
        cli.check_overrides(config, v.overrides, flag=f"--variant={v.name}")
      request = paired.make_request(_CONFIG.value, {}, _STEPS.value, _FLAGS.value)
      os.makedirs(out, exist_ok=True)
      paired.run_paired(
        _CONFIG.value,
        out,
        variants,
        seeds,
        steps=_STEPS.value,
        encoders=_ENCODERS.value,
        feature_kinds=_FEATURE_KINDS.value,
        scores_dir=scores_dir,
        niceness=_NICE.value,
        extra_flags=_FLAGS.value,
        log=log,
      )
    records = paired.load_records(variants, seeds, out, scores_dir)
    markdown, summary = paired.build_report(records, variants, seeds, baseline, _HEADLINE.value, request)
    written = paired.write_report([out, scores_dir], markdown, summary, records, seeds)
  print(markdown)
  print("wrote " + ", ".join(written))
  failed = [f"{r['variant']}/seed{r['seed']}" for r in records if r["status"] == "failed"]
  if failed:
    sys.exit(f"failed: {', '.join(failed)} (see the Runs table; rerun the same command to retry)")


if __name__ == "__main__":
  app.run(main)
