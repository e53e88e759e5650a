"""Synthetic datasets written in the real on-disk formats (the embedded default data)."""

from jointwsss.synth.scannet import (
    SynthScanNetConfig,
    scene_ids,
    synthesize_scannet,
    synthesize_scene,
    write_metadata,
)

__all__ = ["SynthScanNetConfig", "scene_ids", "synthesize_scannet", "synthesize_scene", "write_metadata"]
