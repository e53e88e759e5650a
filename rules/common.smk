# Config validation and the scene lists every other rule file uses.

import json
import os
import sys
from pathlib import Path

from jointwsss.ablation import TABLE2_ROWS
from jointwsss.config import check_config
from jointwsss.io.download import scene_suffixes
from jointwsss.io.scannet_labels import read_split, split_path
from jointwsss.experiments import (
    PRETRAIN_EXPERIMENT,
    PRETRAIN_SPLIT,
    experiment_settings as jointwsss_experiment_settings,
    imported_weights_path,
    pretrain_settings,
    pretrains_image,
    uses_image_network,
    uses_point_network,
)
from jointwsss.io.layout import STORE_KINDS, index_path, store_path
from jointwsss.synth.scannet import (
    COUNT_KEYS,
    SCENE_KEYS,
    WORLD_VERSION,
    SynthScanNetConfig,
    scene_ids as synth_scene_ids,
    scene_settings as synth_scene_settings,
)

# Every check of the configuration, in one place (the schema, then what one key cannot say alone).
for warning in check_config(config):
    print(warning, file=sys.stderr)

RAW_DIR = Path(config["dataset"]["raw_dir"])
LOGS = Path(config["logs_dir"])
# Snakemake's per-job time and memory record of the heavy rules (benchmark:), summed by rule job_costs.
BENCHMARKS = LOGS / "benchmarks"
SOURCE = config["dataset"]["source"]
SPLITS = config["dataset"]["splits"]
# Image network pretrained on extra synthetic scenes (jointwsss.experiments.pretrain_settings).
PRETRAIN_IMAGE = pretrains_image(config)
LABEL_TSV = RAW_DIR / "scannetv2-labels.combined.tsv"
# The state dict converted from model.image.weights when that is an MXNet .params file (rules/weights.smk), else None.
IMPORTED_IMAGE_WEIGHTS = imported_weights_path(config)


def synth_settings(keys):
    """The synth section's ``keys`` as the JSON `jointwsss synth scannet --settings` takes (rules/data.smk)."""
    return json.dumps(synth_scene_settings(config["synth"], keys), sort_keys=True)


def synth_config():
    """The synthetic dataset of the config, with the pretrain scenes where the image network is pretrained."""
    return SynthScanNetConfig.from_settings(
        {**config["synth"], "num_pretrain_scenes": config["pretrain"]["num_scenes"] if PRETRAIN_IMAGE else 0}
    )


def _split_scenes(split):
    if SOURCE == "synthetic":
        scenes = synth_scene_ids(synth_config())[split]
    else:
        # A local copy may ship its own split lists; otherwise the official ones packaged with jointwsss.
        local_list = RAW_DIR / f"scannetv2_{split}.txt"
        scenes = read_split(local_list if SOURCE == "local" and local_list.exists() else split_path(split))
    limit = config["dataset"]["max_scenes_per_split"]
    return scenes[:limit] if limit else scenes


SCENES = {split: _split_scenes(split) for split in SPLITS}
if PRETRAIN_IMAGE:
    SCENES[PRETRAIN_SPLIT] = synth_scene_ids(synth_config())[PRETRAIN_SPLIT]
ALL_SCENES = sorted({s for scenes in SCENES.values() for s in scenes})
TEST_SCENES = set(SCENES.get("test", []))


# scannet.transfer sampled: the frames stage reads .sens and label zip from the server (HTTP Range); only
# the small files are downloaded. dataset.keep_raw false: downloaded files are temp().
SAMPLED = SOURCE == "download" and config["scannet"]["transfer"] == "sampled"
KEEP_RAW = SOURCE != "download" or config["dataset"]["keep_raw"]


def scene_files(scene):
    """Raw files of one scene on disk in the official layout (test scenes carry no label files)."""
    suffixes = scene_suffixes(scene in TEST_SCENES, "sampled" if SAMPLED else "whole")
    return [str(RAW_DIR / "scans" / scene / f"{scene}{suffix}") for suffix in suffixes]


def downloaded(test):
    """Output patterns of a scene's download job: what scene_files lists, temp() unless dataset.keep_raw."""
    suffixes = scene_suffixes(test, "sampled" if SAMPLED else "whole")
    paths = [str(RAW_DIR / f"scans/{{scene}}/{{scene}}{suffix}") for suffix in suffixes]
    return paths if KEEP_RAW else [temp(p) for p in paths]


def split_list(split):
    return str(RAW_DIR / f"scannetv2_{split}.txt")


if SOURCE == "download":
    # Passed through the environment rather than params: a changed URL (a new token) must not
    # make Snakemake download 1.2 TB again.
    os.environ.update(JOINTWSSS_SCANNET_BASE_URL=config["scannet"]["base_url"])


RUNS = Path(config["runs_dir"])
EXPERIMENTS = list(config["experiments"])


# Every {experiment} of a rule's files is one of the configured experiments and every {split} one of the
# splits (rules that take narrower sets say so); without this, a path such as runs/a/eval/... could match
# several rules.
wildcard_constraints:
    experiment="|".join(EXPERIMENTS),
    split="|".join(SCENES),
    room="[^/]+",  # an S3DIS room (rules/s3dis.smk)


def experiment_settings(name):
    """Everything that determines the trained weights of one experiment (jointwsss.experiments.experiment_settings)."""
    return jointwsss_experiment_settings(config, name)


def train_launcher():
    """`jointwsss` for one process, torchrun + DDP for several GPUs."""
    gpus = config["train"]["gpus"]
    if gpus > 1:
        return f"torchrun --standalone --nproc-per-node {gpus} --no-python jointwsss"
    return "jointwsss"


# ---------------------------------------------------------------- preprocessing inputs
CACHE = Path(config["cache_dir"])


def scene_dir(wildcards):
    return str(RAW_DIR / "scans" / wildcards.scene)


def frames_transfer_args(wildcards):
    """Extra `jointwsss preprocess frames` flags: read from the server under scannet.transfer sampled."""
    if not SAMPLED:
        return ""
    return "--transfer sampled" + (" --test" if wildcards.scene in TEST_SCENES else "")


def points_inputs(wildcards):
    s = wildcards.scene
    files = [RAW_DIR / f"scans/{s}/{s}_vh_clean_2.ply"]
    if s not in TEST_SCENES:
        files.append(RAW_DIR / f"scans/{s}/{s}_vh_clean_2.labels.ply")
    return [str(f) for f in files]


def frames_inputs(wildcards):
    s = wildcards.scene
    if SAMPLED:  # the frames stage reads .sens and label zip from the server
        return [str(LABEL_TSV)]
    files = [RAW_DIR / f"scans/{s}/{s}.sens", LABEL_TSV]
    if s not in TEST_SCENES:
        files.append(RAW_DIR / f"scans/{s}/{s}_2d-label-filt.zip")
    return [str(f) for f in files]


# ---------------------------------------------------------------- training inputs
def split_stores(split):
    """The index and every store of a split: what training on it reads."""
    return [str(index_path(CACHE, split))] + [
        str(store_path(CACHE, kind, scene)) for scene in SCENES[split] for kind in STORE_KINDS
    ]


# Run folders train_experiment writes (the experiments and the image pretraining).
TRAINED_RUNS = EXPERIMENTS + ([PRETRAIN_EXPERIMENT] if PRETRAIN_IMAGE else [])


# Cores of every job that trains the networks (training, the training benchmark): the main process plus
# train.num_workers DataLoader workers; on a GPU machine the cores only feed the GPU. Each job sets torch's
# threads to the cores it was given (Snakemake's OMP_NUM_THREADS; `--threads` where the command takes it), so jobs
# side by side never oversubscribe (each would slow down by half).
NETWORK_THREADS = max(1, config["train"]["num_workers"] + 1)
# Cores of every job that only runs trained networks (inference, diagnosis): eval.threads.
INFERENCE_THREADS = config["eval"]["threads"]


def training_settings(name):
    """Training settings of an experiment or of the image network's pretraining."""
    if name == PRETRAIN_EXPERIMENT:
        return pretrain_settings(config, SCENES[PRETRAIN_SPLIT])
    return experiment_settings(name)


def train_inputs(wildcards):
    """Stores the run trains on (the split's, or the pretrain scenes' frames for the image network's
    pretraining), plus the initial image weights of runs that have them."""
    settings = training_settings(wildcards.experiment)
    weights = settings["model"]["image"]["weights"]
    if wildcards.experiment == PRETRAIN_EXPERIMENT:
        stores = [str(store_path(CACHE, "frames", scene)) for scene in settings["scenes"]]
    else:
        stores = split_stores(settings["split"])
    return stores + ([weights] if weights else [])


# ---------------------------------------------------------------- evaluation
# train split: pseudo-label quality (CAM restricted to the known labels); other splits: plain inference
EVAL_MODES = {split: ("pseudo_label" if split == "train" else "inference") for split in SPLITS}
EVAL_SPLITS = [s for s in SPLITS if s != "test"]
# Table 2 rows + the PCAM-like control, in the paper's order (jointwsss.ablation.TABLE2_ROWS; the schema's default
# experiments hold every one of them)
ABLATION_EXPERIMENTS = list(dict.fromkeys(name for _, name, _, _ in TABLE2_ROWS))


# ---------------------------------------------------------------- report
def report_inputs(name):
    """Exports of one evaluated experiment, the outputs of the rules of rules/report.smk and export_diagnosis:
    tables and curves, the legend, its diagnosis per evaluated split; where it has a point network the 3D
    files and the interactive 3D viewer, where it has an image network the 2D overlays."""
    exp = config["experiments"][name]
    exports = [rules.export_tables, rules.export_legend]
    exports += [rules.export_3d, rules.export_viewer] if uses_point_network(exp) else []
    exports += [rules.export_overlays] if uses_image_network(exp) else []
    out = [path for rule in exports for path in expand(rule.output, experiment=name)]
    return out + expand(rules.export_diagnosis.output, experiment=name, split=EVAL_SPLITS)
