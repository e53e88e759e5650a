# The paper's setup rehearsed at ScanNet's real sizes (workflow/configs/rehearsal.yaml over paper.yaml) and what
# the real run will cost. Target: rehearsal (not part of `all`):
#   snakemake --cores 2 rehearsal      -> runs/rehearsal/cost.json, cost.md
# rehearsal_run runs this same workflow in its own folder, rehearsal/ (data/, runs/, logs/ with every stage's
# benchmark: record), with paper.yaml then rehearsal.yaml as its configuration: raw data -> caches at
# frames.skip 100 -> train.max_steps joint steps -> evaluation (val and train) -> exports. rehearsal_cost turns
# the records into the report (jointwsss.bench.cost).

REHEARSAL_DIR = Path("rehearsal")
REHEARSAL_CONFIGS = [Path(workflow.basedir) / "workflow/configs" / name for name in ("paper.yaml", "rehearsal.yaml")]
# The inner run's targets, relative to its folder: the main experiment's evaluation and exports.
REHEARSAL_TARGETS = {
    "metrics": "runs/joint/eval/metrics.json",
    "table": "runs/joint/eval/metrics.tsv",
    "submission": "runs/joint/eval/submission_val",
    "ply": "runs/joint/eval/ply_val",
}
# Outside the inner run's benchmarks/, so the report does not count the whole run as one of its stages.
REHEARSAL_BENCHMARKS = REHEARSAL_DIR / "logs/rehearsal_benchmarks"


rule rehearsal_run:
    input:
        REHEARSAL_CONFIGS,
    output:
        metrics=REHEARSAL_DIR / REHEARSAL_TARGETS["metrics"],
        table=REHEARSAL_DIR / REHEARSAL_TARGETS["table"],
        submission=directory(REHEARSAL_DIR / REHEARSAL_TARGETS["submission"]),
        ply=directory(REHEARSAL_DIR / REHEARSAL_TARGETS["ply"]),
    log:
        LOGS / "rehearsal/run.log",
    benchmark:
        REHEARSAL_BENCHMARKS / "rehearsal_run.tsv"
    conda:
        "../envs/jointwsss.yaml"
    # a fixed count, not workflow.cores: that needs --cores, which --report and cluster submissions do not give;
    # a local run caps a job's threads at --cores anyway
    threads: 16
    params:
        snakefile=workflow.main_snakefile,
        workdir=REHEARSAL_DIR,
        targets=" ".join(REHEARSAL_TARGETS.values()),
    shell:
        "snakemake {params.targets} --snakefile {params.snakefile} --directory {params.workdir} --cores {threads}"
        " --configfile {input} > {log} 2>&1"


rule rehearsal_cost:
    input:
        rules.rehearsal_run.output,
    output:
        json=RUNS / "rehearsal/cost.json",
        md=report(RUNS / "rehearsal/cost.md", caption="../workflow/report/rehearsal.rst", category="rehearsal"),
    log:
        LOGS / "rehearsal/cost.log",
    benchmark:
        REHEARSAL_BENCHMARKS / "rehearsal_cost.tsv"
    conda:
        "../envs/jointwsss.yaml"
    params:
        workdir=REHEARSAL_DIR,
        configs=[Path(workflow.basedir) / "config.yaml", *REHEARSAL_CONFIGS],
        schedule=[Path(workflow.basedir) / "config.yaml", REHEARSAL_CONFIGS[0]],
        run_benchmark=REHEARSAL_BENCHMARKS / "rehearsal_run.tsv",
        cores=lambda wildcards: workflow.cores,  # at job time: --report and cluster submissions give no --cores
    shell:
        "jointwsss bench cost --workdir {params.workdir} --run-benchmark {params.run_benchmark} --cores {params.cores}"
        " --out-json {output.json} --out-md {output.md} --configfile {params.configs}"
        " --schedule-configfile {params.schedule} > {log} 2>&1"


rule rehearsal:
    input:
        rules.rehearsal_cost.output,
    localrule: True
