# Raw scans in the official ScanNet layout: synthesized, downloaded, or an existing local copy.


if SOURCE == "synthetic":

    NON_TEST = [s for s in ALL_SCENES if s not in TEST_SCENES] or ["__none__"]
    ONLY_TEST = sorted(TEST_SCENES) or ["__none__"]

    SYNTH_SPLITS = ["train", "val"] + (["test"] if config["synth"]["num_test_scenes"] else [])

    rule synth_scannet_meta:
        output:
            tsv=LABEL_TSV,
            splits=[split_list(s) for s in SYNTH_SPLITS],
        log:
            LOGS / "synth_scannet_meta.log",
        conda:
            "../envs/jointwsss.yaml"
        params:
            raw_dir=RAW_DIR,
            settings=synth_settings(("seed",) + COUNT_KEYS),
        shell:
            "jointwsss synth scannet --out {params.raw_dir} --meta-only --settings {params.settings:q} > {log} 2>&1"

    # A scene of the train, val or pretrain split; test scenes (below) lack the label files, as in ScanNet.
    rule synth_scannet:
        output:
            sens=RAW_DIR / "scans/{scene}/{scene}.sens",
            meta=RAW_DIR / "scans/{scene}/{scene}.txt",
            mesh=RAW_DIR / "scans/{scene}/{scene}_vh_clean_2.ply",
            labels=RAW_DIR / "scans/{scene}/{scene}_vh_clean_2.labels.ply",
            label_zip=RAW_DIR / "scans/{scene}/{scene}_2d-label-filt.zip",
        log:
            LOGS / "synth_scannet/{scene}.log",
        benchmark:
            BENCHMARKS / "synth_scannet/{scene}.tsv"
        wildcard_constraints:
            scene="|".join(NON_TEST),
        conda:
            "../envs/jointwsss.yaml"
        params:
            raw_dir=RAW_DIR,
            test=lambda wc: "--test" if wc.scene in TEST_SCENES else "",
            # every setting that shapes a scene (a changed scene count reruns only synth_scannet_meta)
            settings=synth_settings(SCENE_KEYS),
            # the generator's version: data that an earlier world wrote is remade (its params differ)
            world=WORLD_VERSION,
        shell:
            "jointwsss synth scannet --out {params.raw_dir} --scene {wildcards.scene} {params.test}"
            " --settings {params.settings:q} > {log} 2>&1"

    use rule synth_scannet as synth_scannet_test with:
        output:
            sens=RAW_DIR / "scans/{scene}/{scene}.sens",
            meta=RAW_DIR / "scans/{scene}/{scene}.txt",
            mesh=RAW_DIR / "scans/{scene}/{scene}_vh_clean_2.ply",
        wildcard_constraints:
            scene="|".join(ONLY_TEST),

elif SOURCE == "download":

    rule download_label_tsv:
        output:
            LABEL_TSV,
        log:
            LOGS / "download/label_tsv.log",
        conda:
            "../envs/jointwsss.yaml"
        params:
            raw_dir=RAW_DIR,
        shell:
            "jointwsss download tsv --raw-dir {params.raw_dir} > {log} 2>&1"

    # A scene of the train or val split; test scenes (below) have no label files on the server.
    rule download_scene:
        output:
            downloaded(test=False),
        log:
            LOGS / "download/{scene}.log",
        benchmark:
            BENCHMARKS / "download_scene/{scene}.tsv"
        wildcard_constraints:
            scene="|".join(s for s in ALL_SCENES if s not in TEST_SCENES) or "__none__",
        conda:
            "../envs/jointwsss.yaml"
        resources:
            downloads=1,
        params:
            raw_dir=RAW_DIR,
            transfer=config["scannet"]["transfer"],
        shell:
            # a scene of the official test list is fetched without label files (jointwsss knows the list)
            "jointwsss download scene --raw-dir {params.raw_dir} --scene {wildcards.scene}"
            " --transfer {params.transfer} > {log} 2>&1"

    use rule download_scene as download_test_scene with:
        output:
            downloaded(test=True),
        wildcard_constraints:
            scene="|".join(sorted(TEST_SCENES)) or "__none__",


rule data:
    input:
        LABEL_TSV,
        [scene_files(scene) for scene in ALL_SCENES],
    localrule: True
