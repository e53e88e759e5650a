# jointwsss: joint 2D-3D weakly supervised semantic segmentation as a Snakemake DAG.
# Targets: data (raw scans: synthesized, downloaded or local), preprocess (Zarr caches + split indexes),
# train (the configured experiment; `--config experiment=cls3d` for another), eval, ablation,
# report_assets (default; then `snakemake --report report.html`), bench, mutation (mutation testing, docs/mutation.md),
# rehearsal (the paper's setup at ScanNet's real sizes and what the real run costs, docs/benchmarks.md).
# Every rule is a thin wrapper around a `jointwsss` subcommand; see README.md.

from pathlib import Path

from snakemake.utils import min_version

min_version("8.0")


# The default config sits next to this Snakefile, so `snakemake -d <workdir>` works too;
# --configfile files are merged over it.
configfile: Path(workflow.basedir) / "config.yaml"


include: "rules/common.smk"
include: "rules/weights.smk"
include: "rules/data.smk"
include: "rules/preprocess.smk"
include: "rules/train.smk"
include: "rules/eval.smk"
include: "rules/diagnose.smk"
include: "rules/s3dis.smk"
include: "rules/bench.smk"
include: "rules/mutation.smk"
include: "rules/rehearsal.smk"
include: "rules/report.smk"


report: "workflow/report/workflow.rst"


# Snakemake >= 8.17 re-arms a timer on every scheduling pass while a job rate limit is set, and its CLI
# sets one by default (--max-jobs-per-timespan 100/1s). Every finished job starts one more such timer
# chain, each waking the scheduler once a second to re-check the inputs of every waiting job: after the
# ~300 preprocessing jobs of the default dataset the scheduler alone kept 44 % of a core busy and a
# training epoch took 48 s instead of 31 s on 2 cores. Local runs never submit 100 jobs a second, so the
# default limit is dropped once the scheduler exists (a limit given explicitly is kept). The settings
# cannot be changed earlier: Snakemake attaches them to the workflow after reading this file.
onstart:
    limiter = getattr(getattr(workflow, "scheduler", None), "job_rate_limiter", None)
    if limiter is not None and (limiter.max_jobs, limiter.timespan) == (100, 1):
        workflow.scheduler.job_rate_limiter = None


rule all:
    default_target: True
    input:
        rules.report_assets.input,
