# Evaluation of a trained experiment: predictions per split (HDF5) and metrics.json. Target: eval.


rule infer:
    input:
        model=RUNS / "{experiment}/model.pt",
        index=index_path(CACHE, "{split}"),
    output:
        RUNS / "{experiment}/eval/predictions/{split}.h5",
    log:
        LOGS / "infer/{experiment}_{split}.log",
    benchmark:
        BENCHMARKS / "infer/{experiment}_{split}.tsv"
    conda:
        "../envs/jointwsss.yaml"
    threads: INFERENCE_THREADS
    resources:
        device=config["train"]["device"],
    params:
        cache_dir=CACHE,
        mode=lambda wc: EVAL_MODES[wc.split],
        passes_3d=config["eval"]["passes_3d"],
        seed=config["seed"],
    shell:
        "jointwsss infer --model {input.model} --cache-dir {params.cache_dir} --split {wildcards.split}"
        " --mode {params.mode} --passes-3d {params.passes_3d} --seed {params.seed}"
        " --device {resources.device} --threads {threads} --out {output} > {log} 2>&1"


rule evaluate:
    input:
        lambda wc: [str(RUNS / f"{wc.experiment}/eval/predictions/{split}.h5") for split in EVAL_SPLITS],
    output:
        RUNS / "{experiment}/eval/metrics.json",
    log:
        LOGS / "evaluate/{experiment}.log",
    conda:
        "../envs/jointwsss.yaml"
    params:
        cache_dir=CACHE,
    shell:
        "jointwsss evaluate --experiment {wildcards.experiment} --cache-dir {params.cache_dir}"
        " --predictions {input} --out {output} > {log} 2>&1"


rule eval:
    input:
        RUNS / f"{config['experiment']}/eval/metrics.json",
    localrule: True


rule ablation_table:
    input:
        [str(RUNS / f"{name}/eval/metrics.json") for name in ABLATION_EXPERIMENTS],
    output:
        md=RUNS / "ablation.md",
        json=RUNS / "ablation.json",
    log:
        LOGS / "ablation.log",
    conda:
        "../envs/jointwsss.yaml"
    params:
        runs_dir=RUNS,
        experiments=json.dumps(config["experiments"], sort_keys=True),
    shell:
        "jointwsss ablation --runs-dir {params.runs_dir} --experiments {params.experiments:q}"
        " --out-md {output.md} --out-json {output.json} > {log} 2>&1"


rule ablation:
    input:
        RUNS / "ablation.md",
    localrule: True
