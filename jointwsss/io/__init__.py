"""Readers and writers of the on-disk formats: ScanNet (.sens, PLY, label zips and tsv, downloads), S3DIS and
Stanford 2D-3D-S, PSA's MXNet .params, and our Zarr v3 caches (``zarr_store``, laid out by ``layout``).

Nothing in here knows about models or training.
"""

from jointwsss.io.errors import DataFormatError
from jointwsss.io.atomic import atomic_path

__all__ = ["DataFormatError", "atomic_path"]
