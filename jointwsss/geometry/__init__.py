"""Camera geometry in ScanNet's conventions (see :mod:`jointwsss.geometry.camera`)."""

from jointwsss.geometry.camera import (
    intrinsic_matrix,
    look_at,
    pixel_rays,
    project_points,
    scale_intrinsic,
    view_matrix,
    world_to_camera,
)

__all__ = [
    "intrinsic_matrix",
    "look_at",
    "pixel_rays",
    "project_points",
    "scale_intrinsic",
    "view_matrix",
    "world_to_camera",
]
