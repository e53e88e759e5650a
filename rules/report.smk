# Exports of an evaluated experiment (submission files, coloured PLYs, overlays, curves, tables) and the
# inputs of the HTML report: `snakemake --cores 2 report_assets` then `snakemake --report report.html`.


rule export_tables:
    input:
        model=RUNS / "{experiment}/model.pt",
        metrics=RUNS / "{experiment}/eval/metrics.json",
    output:
        table=report(
            RUNS / "{experiment}/eval/metrics.tsv",
            caption="../workflow/report/metrics.rst",
            category="{experiment}",
            subcategory="metrics",
        ),
        curves=report(
            RUNS / "{experiment}/eval/curves.png",
            caption="../workflow/report/curves.rst",
            category="{experiment}",
            subcategory="training",
        ),
    log:
        LOGS / "export/{experiment}_tables.log",
    conda:
        "../envs/jointwsss.yaml"
    params:
        metrics_jsonl=lambda wc: RUNS / wc.experiment / "metrics.jsonl",
    shell:
        "(jointwsss export table --metrics {input.metrics} --out {output.table}"
        " && jointwsss export curves --metrics {params.metrics_jsonl} --out {output.curves}) > {log} 2>&1"


rule export_3d:
    input:
        predictions=RUNS / "{experiment}/eval/predictions/val.h5",
    output:
        submission=directory(RUNS / "{experiment}/eval/submission_val"),
        ply=directory(RUNS / "{experiment}/eval/ply_val"),
    log:
        LOGS / "export/{experiment}_3d.log",
    conda:
        "../envs/jointwsss.yaml"
    params:
        cache_dir=CACHE,
        scans_dir=RAW_DIR / "scans",
    shell:
        "(jointwsss export submission --predictions {input.predictions} --out {output.submission}"
        " --cache-dir {params.cache_dir}"
        " && jointwsss export ply --predictions {input.predictions} --scans-dir {params.scans_dir}"
        " --out {output.ply}) > {log} 2>&1"


rule export_overlays:
    input:
        model=RUNS / "{experiment}/model.pt",
        predictions=RUNS / "{experiment}/eval/predictions/val.h5",
    output:
        report(
            directory(RUNS / "{experiment}/eval/overlays_val"),
            patterns=["{name}.png"],
            caption="../workflow/report/overlays.rst",
            category="{experiment}",
            subcategory="2D predictions",
        ),
    log:
        LOGS / "export/{experiment}_overlays.log",
    conda:
        "../envs/jointwsss.yaml"
    params:
        cache_dir=CACHE,
    shell:
        "jointwsss export overlays --predictions {input.predictions} --cache-dir {params.cache_dir}"
        " --model {input.model} --out {output} > {log} 2>&1"


rule export_viewer:
    input:
        model=RUNS / "{experiment}/model.pt",
        predictions=RUNS / "{experiment}/eval/predictions/val.h5",
    output:
        report(
            directory(RUNS / "{experiment}/eval/viewer"),
            patterns=["{name}.html"],
            caption="../workflow/report/viewer.rst",
            category="{experiment}",
            subcategory="3D viewer",
        ),
    log:
        LOGS / "export/{experiment}_viewer.log",
    benchmark:
        BENCHMARKS / "export_viewer/{experiment}.tsv"
    conda:
        "../envs/jointwsss.yaml"
    params:
        cache_dir=CACHE,
        scans_dir=RAW_DIR / "scans",
    shell:
        "jointwsss export viewer --predictions {input.predictions} --cache-dir {params.cache_dir}"
        " --scans-dir {params.scans_dir} --model {input.model} --out {output} > {log} 2>&1"


rule export_legend:
    output:
        report(RUNS / "palette.png", caption="../workflow/report/legend.rst", category="legend"),
    log:
        LOGS / "export/legend.log",
    conda:
        "../envs/jointwsss.yaml"
    shell:
        "jointwsss export legend --out {output} > {log} 2>&1"


# Runs after every job of the main job (its inputs), so the records of all of them are there to be summed.
rule job_costs:
    input:
        lambda wc: report_inputs(config["experiment"]),
    output:
        tsv=report(RUNS / "job_costs.tsv", caption="../workflow/report/job_costs.rst", category="job costs"),
        json=RUNS / "job_costs.json",
    log:
        LOGS / "export/job_costs.log",
    conda:
        "../envs/jointwsss.yaml"
    params:
        benchmarks=BENCHMARKS,
    shell:
        "jointwsss export job-costs --benchmarks {params.benchmarks} --out-tsv {output.tsv} --out-json {output.json}"
        " > {log} 2>&1"


rule report_assets:
    input:
        lambda wc: report_inputs(config["experiment"]),
        rules.job_costs.output,
        expand(rules.world_stats.output, split="train"),
    localrule: True
