# Evaluation of a trained experiment: predictions per split (HDF5) and metrics.json. Target: eval.


rule infer:
    input:
        model=RUNS / "{experiment}/model.pt",
        index=CACHE / "index/{split}.json",
    output:
        RUNS / "{experiment}/eval/predictions/{split}.h5",
    wildcard_constraints:
        experiment="|".join(EXPERIMENTS),
        split="|".join(SPLITS),
    params:
        cache_dir=CACHE,
        mode=lambda wc: EVAL_MODES[wc.split],
        passes_3d=config["eval"]["passes_3d"],
        seed=config["seed"],
    threads: NETWORK_THREADS
    resources:
        device=config["train"]["device"],
    conda:
        "../envs/jointwsss.yaml"
    log:
        LOGS / "infer/{experiment}_{split}.log",
    shell:
        "jointwsss infer --model {input.model} --cache-dir {params.cache_dir} --split {wildcards.split}"
        " --mode {params.mode} --passes-3d {params.passes_3d} --seed {params.seed}"
        " --device {resources.device} --threads {threads} --out {output} > {log} 2>&1"


rule evaluate:
    input:
        lambda wc: [str(RUNS / f"{wc.experiment}/eval/predictions/{split}.h5") for split in EVAL_SPLITS],
    output:
        RUNS / "{experiment}/eval/metrics.json",
    wildcard_constraints:
        experiment="|".join(EXPERIMENTS),
    params:
        cache_dir=CACHE,
    conda:
        "../envs/jointwsss.yaml"
    log:
        LOGS / "evaluate/{experiment}.log",
    shell:
        "jointwsss evaluate --experiment {wildcards.experiment} --cache-dir {params.cache_dir}"
        " --predictions {input} --out {output} > {log} 2>&1"


rule eval:
    localrule: True
    input:
        RUNS / f"{config['experiment']}/eval/metrics.json",


rule ablation_table:
    input:
        [str(RUNS / f"{name}/eval/metrics.json") for name in ABLATION_EXPERIMENTS],
    output:
        md=RUNS / "ablation.md",
        json=RUNS / "ablation.json",
    params:
        runs_dir=RUNS,
        experiments=json.dumps(config["experiments"], sort_keys=True),
    conda:
        "../envs/jointwsss.yaml"
    log:
        LOGS / "ablation.log",
    shell:
        "jointwsss ablation --runs-dir {params.runs_dir} --experiments {params.experiments:q}"
        " --out-md {output.md} --out-json {output.json} > {log} 2>&1"


rule ablation:
    localrule: True
    input:
        RUNS / "ablation.md",
