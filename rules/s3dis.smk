# Generalization (paper Table 4): ScanNet-trained models evaluated without fine-tuning on S3DIS rooms (3D,
# points only) and Stanford 2D-3D-S frames (2D, images only) of one area, on the shared classes.
# Target: eval_s3dis. Raw area (synthesized or local) -> room listing (checkpoint: room names come from the data)
# -> per-room points / frames stores -> index -> per-experiment predictions and s3dis_metrics.json -> table.

from jointwsss.ablation import TABLE4_ROWS
from jointwsss.preprocess.s3dis import SHARED_CLASS_NAMES, room_listing
from jointwsss.synth.s3dis import WORLD_VERSION as S3DIS_WORLD_VERSION

S3DIS = config["s3dis"]
S3DIS_RAW = Path(S3DIS["raw_dir"])
S3DIS_CACHE = Path(S3DIS["cache_dir"])
S3DIS_AREA = S3DIS["area"]
S3DIS_SPLIT = f"area_{S3DIS_AREA}"
# Table 4 rows in the paper's order: cls2d, to2d, joint (2D) and cls3d, to3d, joint (3D)
TABLE4_EXPERIMENTS = list(dict.fromkeys(name for _, name, _ in TABLE4_ROWS))


if S3DIS["source"] == "synthetic":
    S3DIS_RAW_READY = [S3DIS_RAW / f"synth_s3dis_area_{S3DIS_AREA}.json"]

    rule s3dis_synth:
        output:
            S3DIS_RAW_READY,
        log:
            LOGS / f"s3dis/synth_area_{S3DIS_AREA}.log",
        benchmark:
            BENCHMARKS / f"s3dis_synth/area_{S3DIS_AREA}.tsv"
        conda:
            "../envs/jointwsss.yaml"
        threads: 2
        params:
            raw_dir=S3DIS_RAW,
            area=S3DIS_AREA,
            settings=json.dumps(S3DIS["synth"], sort_keys=True),
            # the generator's version: an area that an earlier generator wrote is remade (its params differ)
            world=S3DIS_WORLD_VERSION,
        shell:
            "jointwsss synth s3dis --out {params.raw_dir} --area {params.area} --settings {params.settings:q}"
            " --workers {threads} --summary {output} > {log} 2>&1"

else:
    S3DIS_RAW_READY = []


# The rooms are those of the raw area, known only once it exists (synthesized or local): a checkpoint.
checkpoint s3dis_rooms:
    input:
        S3DIS_RAW_READY,
    output:
        S3DIS_CACHE / f"rooms_{S3DIS_SPLIT}.json",
    log:
        LOGS / f"s3dis/rooms_{S3DIS_SPLIT}.log",
    conda:
        "../envs/jointwsss.yaml"
    params:
        raw_dir=S3DIS_RAW,
        area=S3DIS_AREA,
    shell:
        "jointwsss preprocess s3dis-rooms --raw-dir {params.raw_dir} --area {params.area} --out {output} > {log} 2>&1"


rule s3dis_points:
    input:
        S3DIS_CACHE / f"rooms_{S3DIS_SPLIT}.json",
    output:
        directory(store_path(S3DIS_CACHE, "points", "{room}")),
    log:
        LOGS / "s3dis/points/{room}.log",
    benchmark:
        BENCHMARKS / "s3dis_points/{room}.tsv"
    conda:
        "../envs/jointwsss.yaml"
    params:
        raw_dir=S3DIS_RAW,
        area=S3DIS_AREA,
        min_points=config["labels"]["min_points"],
    shell:
        "jointwsss preprocess s3dis-points --raw-dir {params.raw_dir} --area {params.area} --room {wildcards.room}"
        " --out {output} --min-points {params.min_points} > {log} 2>&1"


rule s3dis_frames:
    input:
        S3DIS_CACHE / f"rooms_{S3DIS_SPLIT}.json",
    output:
        directory(store_path(S3DIS_CACHE, "frames", "{room}")),
    log:
        LOGS / "s3dis/frames/{room}.log",
    benchmark:
        BENCHMARKS / "s3dis_frames/{room}.tsv"
    conda:
        "../envs/jointwsss.yaml"
    params:
        raw_dir=S3DIS_RAW,
        area=S3DIS_AREA,
        image_size=S3DIS["image_size"],
        min_pixel_fraction=config["labels"]["min_pixel_fraction"],
        max_frames=f"--max-frames {S3DIS['max_frames_per_room']}" if S3DIS["max_frames_per_room"] else "",
    shell:
        "jointwsss preprocess s3dis-frames --raw-dir {params.raw_dir} --area {params.area} --room {wildcards.room}"
        " --out {output} --image-size {params.image_size[0]} {params.image_size[1]}"
        " --min-pixel-fraction {params.min_pixel_fraction} {params.max_frames} > {log} 2>&1"


rule s3dis_index:
    input:
        lambda wc: [
            str(store_path(S3DIS_CACHE, kind, room))
            for room in room_listing(checkpoints.s3dis_rooms.get().output[0])
            for kind in ("points", "frames")
        ],
    output:
        index_path(S3DIS_CACHE, S3DIS_SPLIT),
    log:
        LOGS / f"s3dis/index_{S3DIS_SPLIT}.log",
    conda:
        "../envs/jointwsss.yaml"
    params:
        rooms=lambda wc: " ".join(room_listing(checkpoints.s3dis_rooms.get().output[0])),
        cache_dir=S3DIS_CACHE,
        split=S3DIS_SPLIT,
    shell:
        "jointwsss preprocess index --split {params.split} --cache-dir {params.cache_dir} --out {output}"
        " --scenes {params.rooms} > {log} 2>&1"


rule s3dis_infer:
    input:
        model=RUNS / "{experiment}/model.pt",
        index=index_path(S3DIS_CACHE, S3DIS_SPLIT),
    output:
        RUNS / f"{{experiment}}/eval/s3dis/{S3DIS_SPLIT}.h5",
    log:
        LOGS / f"s3dis/infer/{{experiment}}_{S3DIS_SPLIT}.log",
    benchmark:
        BENCHMARKS / f"s3dis_infer/{{experiment}}_{S3DIS_SPLIT}.tsv"
    conda:
        "../envs/jointwsss.yaml"
    threads: INFERENCE_THREADS
    resources:
        device=config["train"]["device"],
    params:
        cache_dir=S3DIS_CACHE,
        split=S3DIS_SPLIT,
        passes_3d=config["eval"]["passes_3d"],
        seed=config["seed"],
        restrict=f"--restrict-to {' '.join(SHARED_CLASS_NAMES)}" if S3DIS["restrict_to_shared"] else "",
    shell:
        # every room, also one without 2D-3D-S frames (its points are still evaluated)
        "jointwsss infer --model {input.model} --cache-dir {params.cache_dir} --split {params.split}"
        " --mode inference --all-scenes {params.restrict} --passes-3d {params.passes_3d} --seed {params.seed}"
        " --device {resources.device} --threads {threads} --out {output} > {log} 2>&1"


rule s3dis_evaluate:
    input:
        RUNS / f"{{experiment}}/eval/s3dis/{S3DIS_SPLIT}.h5",
    output:
        RUNS / "{experiment}/eval/s3dis_metrics.json",
    log:
        LOGS / "s3dis/evaluate/{experiment}.log",
    conda:
        "../envs/jointwsss.yaml"
    params:
        cache_dir=S3DIS_CACHE,
        classes=" ".join(SHARED_CLASS_NAMES),
    shell:
        "jointwsss evaluate --experiment {wildcards.experiment} --dataset s3dis --classes {params.classes}"
        " --cache-dir {params.cache_dir} --predictions {input} --out {output} > {log} 2>&1"


rule s3dis_table:
    input:
        [str(RUNS / f"{name}/eval/s3dis_metrics.json") for name in TABLE4_EXPERIMENTS],
    output:
        md=RUNS / "s3dis_table.md",
        json=RUNS / "s3dis_table.json",
    log:
        LOGS / "s3dis/table.log",
    conda:
        "../envs/jointwsss.yaml"
    params:
        runs_dir=RUNS,
        area=S3DIS_AREA,
        experiments=json.dumps(config["experiments"], sort_keys=True),
    shell:
        "jointwsss s3dis-table --runs-dir {params.runs_dir} --area {params.area}"
        " --experiments {params.experiments:q} --out-md {output.md} --out-json {output.json} > {log} 2>&1"


rule eval_s3dis:
    input:
        RUNS / "s3dis_table.md",
    localrule: True
