# Training: one run folder per experiment. Target: train (the configured experiment).

import json


def train_inputs(wildcards):
    return [str(CACHE / "index/train.json")] + [
        str(CACHE / f"{kind}/{scene}.zarr") for scene in SCENES["train"] for kind in ("points", "frames", "corr")
    ]


rule train_experiment:
    input:
        train_inputs,
    output:
        RUNS / "{experiment}/model.pt",
    wildcard_constraints:
        experiment="|".join(EXPERIMENTS),
    params:
        settings=lambda wc: json.dumps(experiment_settings(wc.experiment), sort_keys=True),
        launcher=train_launcher(),
    threads: max(1, config["train"]["num_workers"] + 1)
    resources:
        gpus=config["train"]["gpus"],
        slurm_extra=f"'--gres=gpu:{config['train']['gpus']}'" if config["train"]["gpus"] else "",
    conda:
        "../envs/jointwsss.yaml"
    log:
        LOGS / "train/{experiment}.log",
    shell:
        "{params.launcher} train --run-dir {RUNS}/{wildcards.experiment} --settings {params.settings:q}"
        " --num-workers {config[train][num_workers]} --device {config[train][device]} > {log} 2>&1"


rule train:
    localrule: True
    input:
        RUNS / f"{config['experiment']}/model.pt",
