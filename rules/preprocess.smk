# Per-scene caches (Zarr v3 stores written atomically) and per-split indexes. Target: preprocess.
# Each rule passes every output-changing setting through params, so a config change reruns exactly
# the stages it affects (and what depends on them).

rule points:
    input:
        points_inputs,
    output:
        directory(CACHE / "points/{scene}.zarr"),
    params:
        scene_dir=scene_dir,
        min_points=config["labels"]["min_points"],
    conda:
        "../envs/jointwsss.yaml"
    log:
        LOGS / "points/{scene}.log",
    shell:
        "jointwsss preprocess points --scene-dir {params.scene_dir} --out {output}"
        " --min-points {params.min_points} > {log} 2>&1"


rule frames:
    input:
        frames_inputs,
    output:
        directory(CACHE / "frames/{scene}.zarr"),
    params:
        scene_dir=scene_dir,
        label_tsv=LABEL_TSV,
        skip=config["frames"]["skip"],
        image_size=config["frames"]["image_size"],
        min_pixel_fraction=config["labels"]["min_pixel_fraction"],
        transfer=frames_transfer_args,
    resources:
        downloads=1 if SAMPLED else 0,
    conda:
        "../envs/jointwsss.yaml"
    log:
        LOGS / "frames/{scene}.log",
    shell:
        "jointwsss preprocess frames --scene-dir {params.scene_dir} --out {output} --skip {params.skip}"
        " --image-size {params.image_size[0]} {params.image_size[1]}"
        " --min-pixel-fraction {params.min_pixel_fraction} --label-tsv {params.label_tsv} {params.transfer}"
        " > {log} 2>&1"


rule correspondences:
    input:
        points=CACHE / "points/{scene}.zarr",
        frames=CACHE / "frames/{scene}.zarr",
    output:
        directory(CACHE / "corr/{scene}.zarr"),
    params:
        tolerance=config["correspondences"]["depth_tolerance"],
        mode=config["correspondences"]["depth_tolerance_mode"],
    conda:
        "../envs/jointwsss.yaml"
    log:
        LOGS / "corr/{scene}.log",
    shell:
        "jointwsss preprocess corr --points {input.points} --frames {input.frames} --out {output}"
        " --depth-tolerance {params.tolerance} --depth-tolerance-mode {params.mode} > {log} 2>&1"


rule index:
    input:
        lambda wc: [
            str(CACHE / f"{kind}/{scene}.zarr") for scene in SCENES[wc.split] for kind in ("points", "frames", "corr")
        ],
    output:
        CACHE / "index/{split}.json",
    wildcard_constraints:
        split="|".join(SCENES),
    params:
        scenes=lambda wc: " ".join(SCENES[wc.split]),
        cache_dir=CACHE,
    conda:
        "../envs/jointwsss.yaml"
    log:
        LOGS / "index/{split}.log",
    shell:
        "jointwsss preprocess index --split {wildcards.split} --cache-dir {params.cache_dir} --out {output}"
        " --scenes {params.scenes} > {log} 2>&1"


rule preprocess:
    localrule: True
    input:
        [CACHE / f"index/{split}.json" for split in SPLITS],
