# What the joint losses can transfer on the data, measured against ground truth: view coverage, the
# 2D teacher's pseudo-labels at the visible points, 3D on seen vs unseen vertices, feature pairs
# (jointwsss.diagnose). Target: diagnose (the configured experiment); any run: runs/<name>/diagnose/<split>.json;
# its per-class table (runs/<name>/diagnose/<split>.tsv) is part of the HTML report.


rule diagnose_experiment:
    input:
        model=RUNS / "{experiment}/model.pt",
        index=index_path(CACHE, "{split}"),
        predictions=RUNS / "{experiment}/eval/predictions/{split}.h5",
    output:
        RUNS / "{experiment}/diagnose/{split}.json",
    log:
        LOGS / "diagnose/{experiment}_{split}.log",
    benchmark:
        BENCHMARKS / "diagnose_experiment/{experiment}_{split}.tsv"
    wildcard_constraints:
        split="|".join(EVAL_SPLITS),  # the test split has no labels to diagnose against
    conda:
        "../envs/jointwsss.yaml"
    threads: INFERENCE_THREADS
    resources:
        device=config["train"]["device"],
    params:
        cache_dir=CACHE,
        seed=config["seed"],
    shell:
        "jointwsss diagnose --model {input.model} --cache-dir {params.cache_dir} --split {wildcards.split}"
        " --predictions {input.predictions} --seed {params.seed} --device {resources.device} --threads {threads}"
        " --out {output} > {log} 2>&1"


rule export_diagnosis:
    input:
        RUNS / "{experiment}/diagnose/{split}.json",
    output:
        report(
            RUNS / "{experiment}/diagnose/{split}.tsv",
            caption="../workflow/report/diagnosis.rst",
            category="{experiment}",
            subcategory="diagnosis",
        ),
    log:
        LOGS / "export/{experiment}_diagnosis_{split}.log",
    conda:
        "../envs/jointwsss.yaml"
    shell:
        "jointwsss export table --diagnose {input} --out {output} > {log} 2>&1"


# What the split's views and scenes offer the method (jointwsss.world): views, regions, coverage, classes and the
# appearance probe (train patches -> val patches, or train -> train without a val split).
WORLD_PROBE = ["train", "val" if "val" in SCENES else "train"]


rule world_stats:
    input:
        lambda wc: sorted(set(split_stores(wc.split) + [s for split in WORLD_PROBE for s in split_stores(split)])),
    output:
        json=RUNS / "world/{split}.json",
        txt=report(RUNS / "world/{split}.txt", caption="../workflow/report/world.rst", category="world"),
    log:
        LOGS / "world/{split}.log",
    wildcard_constraints:
        split="train|val",
    conda:
        "../envs/jointwsss.yaml"
    params:
        cache_dir=CACHE,
        min_pixel_fraction=config["labels"]["min_pixel_fraction"],
        probe=" ".join(WORLD_PROBE),
    shell:
        "jointwsss info {params.cache_dir} --world {wildcards.split} --probe {params.probe}"
        " --min-pixel-fraction {params.min_pixel_fraction} --out {output.json} > {log} 2>&1"


rule diagnose:
    input:
        [str(RUNS / f"{config['experiment']}/diagnose/{split}.json") for split in EVAL_SPLITS],
    localrule: True
