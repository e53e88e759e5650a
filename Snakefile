# jointwsss: joint 2D-3D weakly supervised semantic segmentation as a Snakemake DAG.
# Targets: data (raw scans: synthesized, downloaded or local), preprocess (Zarr caches + split indexes),
# train (the configured experiment; `--config experiment=cls3d` for another), eval, ablation,
# report_assets (default; then `snakemake --report report.html`), bench.
# Every rule is a thin wrapper around a `jointwsss` subcommand; see README.md.

from pathlib import Path

from snakemake.utils import min_version

min_version("8.0")


# The default config sits next to this Snakefile, so `snakemake -d <workdir>` works too;
# --configfile files are merged over it.
configfile: Path(workflow.basedir) / "config.yaml"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/preprocess.smk"
include: "rules/train.smk"
include: "rules/eval.smk"
include: "rules/s3dis.smk"
include: "rules/bench.smk"
include: "rules/report.smk"


report: "workflow/report/workflow.rst"


rule all:
    default_target: True
    input:
        rules.report_assets.input,
