# Raw scans in the official ScanNet layout: synthesized, downloaded, or an existing local copy.


if SOURCE == "synthetic":

    NON_TEST = [s for s in ALL_SCENES if s not in TEST_SCENES] or ["__none__"]
    ONLY_TEST = sorted(TEST_SCENES) or ["__none__"]

    SYNTH_SPLITS = ["train", "val"] + (["test"] if config["synth"]["num_test_scenes"] else [])

    rule synth_scannet_meta:
        output:
            tsv=LABEL_TSV,
            splits=[split_list(s) for s in SYNTH_SPLITS],
        params:
            raw_dir=RAW_DIR,
            seed=config["synth"]["seed"],
            counts=[config["synth"][k] for k in ("num_train_scenes", "num_val_scenes", "num_test_scenes")],
        conda:
            "../envs/jointwsss.yaml"
        log:
            LOGS / "synth_scannet_meta.log",
        shell:
            "jointwsss synth scannet --out {params.raw_dir} --meta-only --seed {params.seed}"
            " --num-train-scenes {params.counts[0]} --num-val-scenes {params.counts[1]}"
            " --num-test-scenes {params.counts[2]} > {log} 2>&1"

    rule synth_scannet:
        output:
            sens=RAW_DIR / "scans/{scene}/{scene}.sens",
            meta=RAW_DIR / "scans/{scene}/{scene}.txt",
            mesh=RAW_DIR / "scans/{scene}/{scene}_vh_clean_2.ply",
            labels=RAW_DIR / "scans/{scene}/{scene}_vh_clean_2.labels.ply",
            label_zip=RAW_DIR / "scans/{scene}/{scene}_2d-label-filt.zip",
        wildcard_constraints:
            scene="|".join(NON_TEST),
        params:
            raw_dir=RAW_DIR,
            synth=lambda wc: {k: v for k, v in config["synth"].items() if not k.startswith("num_")},
            args=lambda wc: synth_scene_args(),
        conda:
            "../envs/jointwsss.yaml"
        log:
            LOGS / "synth_scannet/{scene}.log",
        shell:
            "jointwsss synth scannet --out {params.raw_dir} --scene {wildcards.scene} {params.args} > {log} 2>&1"

    rule synth_scannet_test:
        output:
            sens=RAW_DIR / "scans/{scene}/{scene}.sens",
            meta=RAW_DIR / "scans/{scene}/{scene}.txt",
            mesh=RAW_DIR / "scans/{scene}/{scene}_vh_clean_2.ply",
        wildcard_constraints:
            scene="|".join(ONLY_TEST),
        params:
            raw_dir=RAW_DIR,
            synth=lambda wc: {k: v for k, v in config["synth"].items() if not k.startswith("num_")},
            args=lambda wc: synth_scene_args(),
        conda:
            "../envs/jointwsss.yaml"
        log:
            LOGS / "synth_scannet/{scene}.log",
        shell:
            "jointwsss synth scannet --out {params.raw_dir} --scene {wildcards.scene} --test {params.args} > {log} 2>&1"

elif SOURCE == "download":

    rule download_label_tsv:
        output:
            LABEL_TSV,
        params:
            raw_dir=RAW_DIR,
        conda:
            "../envs/jointwsss.yaml"
        log:
            LOGS / "download/label_tsv.log",
        shell:
            "jointwsss download tsv --raw-dir {params.raw_dir} > {log} 2>&1"

    rule download_scene:
        output:
            downloaded(test=False),
        wildcard_constraints:
            scene="|".join(s for s in ALL_SCENES if s not in TEST_SCENES) or "__none__",
        resources:
            downloads=1,
        params:
            raw_dir=RAW_DIR,
            transfer=config["scannet"]["transfer"],
        conda:
            "../envs/jointwsss.yaml"
        log:
            LOGS / "download/{scene}.log",
        shell:
            "jointwsss download scene --raw-dir {params.raw_dir} --scene {wildcards.scene}"
            " --transfer {params.transfer} > {log} 2>&1"

    rule download_test_scene:
        output:
            downloaded(test=True),
        wildcard_constraints:
            scene="|".join(sorted(TEST_SCENES)) or "__none__",
        resources:
            downloads=1,
        params:
            raw_dir=RAW_DIR,
            transfer=config["scannet"]["transfer"],
        conda:
            "../envs/jointwsss.yaml"
        log:
            LOGS / "download/{scene}.log",
        shell:
            "jointwsss download scene --test --raw-dir {params.raw_dir} --scene {wildcards.scene}"
            " --transfer {params.transfer} > {log} 2>&1"


rule data:
    localrule: True
    input:
        LABEL_TSV,
        [scene_files(scene) for scene in ALL_SCENES],
