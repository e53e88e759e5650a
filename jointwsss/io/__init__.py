"""Readers and writers for the on-disk formats of ScanNet (and later S3DIS / 2D-3D-S).

Nothing in here knows about models or training.
"""

from jointwsss.io.errors import DataFormatError
from jointwsss.io.atomic import atomic_path

__all__ = ["DataFormatError", "atomic_path"]
