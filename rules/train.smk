# Training: one run folder per experiment, and one for the image network's pretraining where it is
# pretrained on synthetic scenes (runs/pretrain_image/). Target: train (the configured experiment).


rule train_experiment:
    input:
        train_inputs,
    output:
        RUNS / "{experiment}/model.pt",
    log:
        LOGS / "train/{experiment}.log",
    benchmark:
        BENCHMARKS / "train_experiment/{experiment}.tsv"
    wildcard_constraints:
        experiment="|".join(TRAINED_RUNS),  # the experiments and the image network's pretraining
    conda:
        "../envs/jointwsss.yaml"
    threads: NETWORK_THREADS
    resources:
        gpus=config["train"]["gpus"],
        device=config["train"]["device"],
        # the SLURM executor plugin turns gres into --gres (it rejects --gres inside slurm_extra)
        gres=f"gpu:{config['train']['gpus']}" if config["train"]["gpus"] else "",
    params:
        settings=lambda wc: json.dumps(training_settings(wc.experiment), sort_keys=True),
        launcher=train_launcher(),
        run_dir=lambda wc: RUNS / wc.experiment,
    shell:
        # DataLoader workers = threads - 1: Snakemake lowers threads to the cores it was given.
        "{params.launcher} train --run-dir {params.run_dir} --settings {params.settings:q}"
        " --num-workers $(({threads} - 1)) --device {resources.device} > {log} 2>&1"


rule train:
    input:
        RUNS / f"{config['experiment']}/model.pt",
    localrule: True
