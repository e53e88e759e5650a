# Benchmarks (each writes JSON under bench/). Target: bench.


rule bench_preprocess:
    output:
        "bench/preprocess.json",
    log:
        LOGS / "bench/preprocess.log",
    conda:
        "../envs/jointwsss.yaml"
    shell:
        "jointwsss bench preprocess --work-dir bench/work --out {output} > {log} 2>&1"


rule bench_sens_memory:
    output:
        "bench/sens_memory.json",
    log:
        LOGS / "bench/sens_memory.log",
    conda:
        "../envs/jointwsss.yaml"
    shell:
        "jointwsss bench sens-memory --work-dir bench/work --out {output} > {log} 2>&1"


rule bench_pair_memory:
    output:
        "bench/pair_memory.json",
    log:
        LOGS / "bench/pair_memory.log",
    conda:
        "../envs/jointwsss.yaml"
    shell:
        "jointwsss bench pair-memory --out {output} > {log} 2>&1"


rule bench_params_memory:
    output:
        "bench/params_memory.json",
    log:
        LOGS / "bench/params_memory.log",
    conda:
        "../envs/jointwsss.yaml"
    shell:
        "jointwsss bench params-memory --work-dir bench/work --out {output} > {log} 2>&1"


rule bench_transfer:
    output:
        "bench/transfer.json",
    log:
        LOGS / "bench/transfer.log",
    conda:
        "../envs/jointwsss.yaml"
    shell:
        "jointwsss bench transfer --work-dir bench/work --out {output} > {log} 2>&1"


rule bench_train:
    input:
        index_path(CACHE, "train"),
    output:
        "bench/train.json",
    log:
        LOGS / "bench/train.log",
    conda:
        "../envs/jointwsss.yaml"
    threads: NETWORK_THREADS
    params:
        settings=lambda wc: json.dumps(experiment_settings(config["experiment"]), sort_keys=True),
        batch_size=config["train"]["batch_size"],
    shell:
        "jointwsss bench train --settings {params.settings:q} --batch-size {params.batch_size}"
        " --num-workers $(({threads} - 1)) --out {output} > {log} 2>&1"


rule bench_pointnet:
    input:
        split_stores("train"),
    output:
        "bench/pointnet.json",
    log:
        LOGS / "bench/pointnet.log",
    conda:
        "../envs/jointwsss.yaml"
    threads: NETWORK_THREADS
    params:
        device=config["train"]["device"],
        cache=CACHE,
        points=config["points"]["num"],
        width=config["model"]["point"]["width"],
        radii=lambda wc: (
            "--radii " + " ".join(map(str, config["model"]["point"]["radii"]))
            if config["model"]["point"].get("radii")
            else ""
        ),
    shell:
        "jointwsss bench pointnet --device {params.device} --cache-dir {params.cache} --points {params.points}"
        " --width {params.width} {params.radii} --out {output} > {log} 2>&1"


rule bench:
    input:
        "bench/preprocess.json",
        "bench/sens_memory.json",
        "bench/params_memory.json",
        "bench/pair_memory.json",
        "bench/transfer.json",
        "bench/train.json",
        "bench/pointnet.json",
    localrule: True
