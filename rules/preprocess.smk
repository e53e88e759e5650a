# Per-scene caches (Zarr v3 stores written atomically) and per-split indexes. Target: preprocess.
# Each rule passes every output-changing setting through params, so a config change reruns exactly
# the stages it affects (and what depends on them).


rule points:
    input:
        points_inputs,
    output:
        directory(store_path(CACHE, "points", "{scene}")),
    log:
        LOGS / "points/{scene}.log",
    benchmark:
        BENCHMARKS / "points/{scene}.tsv"
    conda:
        "../envs/jointwsss.yaml"
    params:
        scene_dir=scene_dir,
        min_points=config["labels"]["min_points"],
    shell:
        "jointwsss preprocess points --scene-dir {params.scene_dir} --out {output}"
        " --min-points {params.min_points} > {log} 2>&1"


rule frames:
    input:
        frames_inputs,
    output:
        directory(store_path(CACHE, "frames", "{scene}")),
    log:
        LOGS / "frames/{scene}.log",
    benchmark:
        BENCHMARKS / "frames/{scene}.tsv"
    conda:
        "../envs/jointwsss.yaml"
    resources:
        downloads=1 if SAMPLED else 0,
    params:
        scene_dir=scene_dir,
        label_tsv=LABEL_TSV,
        skip=config["frames"]["skip"],
        image_size=config["frames"]["image_size"],
        min_pixel_fraction=config["labels"]["min_pixel_fraction"],
        transfer=frames_transfer_args,
    shell:
        "jointwsss preprocess frames --scene-dir {params.scene_dir} --out {output} --skip {params.skip}"
        " --image-size {params.image_size[0]} {params.image_size[1]}"
        " --min-pixel-fraction {params.min_pixel_fraction} --label-tsv {params.label_tsv} {params.transfer}"
        " > {log} 2>&1"


rule correspondences:
    input:
        points=store_path(CACHE, "points", "{scene}"),
        frames=store_path(CACHE, "frames", "{scene}"),
    output:
        directory(store_path(CACHE, "corr", "{scene}")),
    log:
        LOGS / "corr/{scene}.log",
    benchmark:
        BENCHMARKS / "correspondences/{scene}.tsv"
    conda:
        "../envs/jointwsss.yaml"
    params:
        tolerance=config["correspondences"]["depth_tolerance"],
        mode=config["correspondences"]["depth_tolerance_mode"],
    shell:
        "jointwsss preprocess corr --points {input.points} --frames {input.frames} --out {output}"
        " --depth-tolerance {params.tolerance} --depth-tolerance-mode {params.mode} > {log} 2>&1"


rule index:
    input:
        lambda wc: [str(store_path(CACHE, kind, scene)) for scene in SCENES[wc.split] for kind in STORE_KINDS],
    output:
        index_path(CACHE, "{split}"),
    log:
        LOGS / "index/{split}.log",
    conda:
        "../envs/jointwsss.yaml"
    params:
        scenes=lambda wc: " ".join(SCENES[wc.split]),
        cache_dir=CACHE,
    shell:
        "jointwsss preprocess index --split {wildcards.split} --cache-dir {params.cache_dir} --out {output}"
        " --scenes {params.scenes} > {log} 2>&1"


rule preprocess:
    input:
        [index_path(CACHE, split) for split in SPLITS],
    localrule: True
