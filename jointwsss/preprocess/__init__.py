"""Preprocessing of raw ScanNet scenes into the Zarr caches (see ``docs`` / README "Caches").

- :mod:`jointwsss.preprocess.points`: ``points/{scene}.zarr`` from the mesh and its labels PLY.
- :mod:`jointwsss.preprocess.frames`: ``frames/{scene}.zarr`` from the ``.sens`` stream and the label zip.
- :mod:`jointwsss.preprocess.index`: ``index/{split}.json`` from the finished stores.
"""
