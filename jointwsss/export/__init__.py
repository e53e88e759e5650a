"""Exports of the evaluation stage: benchmark submission files, coloured PLYs, PNG overlays, figures.

- :mod:`.submission`: ScanNet 3D semantic-label submission files (one nyu40 id per vertex) and their
  evaluation, which must give exactly the mIoU of the HDF5 predictions they came from;
- :mod:`.meshes`: a scene's mesh recoloured by predicted class or by one class's score;
- :mod:`.overlays`: image | ground truth | prediction | CAM panels of the cached frames;
- :mod:`.figures`: training curves from ``metrics.jsonl`` and the class-palette legend;
- :mod:`.images`: the colour rules they share (50 % blend, heat map) and PNG writing.
"""

from jointwsss.export.figures import plot_training_curves, write_palette_legend
from jointwsss.export.images import blend_half, heat_colors, write_png
from jointwsss.export.meshes import write_cam_ply, write_prediction_ply, write_scene_plys
from jointwsss.export.overlays import overlay_panel, write_overlays
from jointwsss.export.submission import evaluate_submission, read_submission, write_submission

__all__ = [
    "blend_half", "evaluate_submission", "heat_colors", "overlay_panel", "plot_training_curves",
    "read_submission", "write_cam_ply", "write_overlays", "write_palette_legend", "write_png",
    "write_prediction_ply", "write_scene_plys", "write_submission",
]
