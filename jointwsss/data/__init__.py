"""Turns the cached Zarr stores into training tensors (datasets, transforms, collation)."""
