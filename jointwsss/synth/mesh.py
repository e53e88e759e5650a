"""Triangulate the scene's surfaces into a ScanNet-like mesh (room frame).

Every face of every primitive becomes a grid of vertices about ``spacing`` metres apart (two
triangles per cell, wound counter-clockwise seen from outside). Vertices that can never be seen
are dropped: those strictly inside another primitive (table-leg tops inside the table top, wall
behind a picture, floor under a cabinet) and those outside the room (backs of things pushed into
a wall, bottoms pushed into the floor); triangles losing a vertex go with them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jointwsss.synth.raycast import NUM_ROOM_FACES, ROOM_FACE_NORMALS, SurfaceKind, SurfaceSet, points_inside, surface_colors


@dataclass
class SceneMesh:
    """``xyz`` (N, 3) float64 metres (room frame); ``normals`` (N, 3); ``faces`` (M, 3) int32;
    ``surface`` (N,) int32 surface index; ``rgb`` (N, 3) uint8 shaded vertex colour."""

    xyz: np.ndarray
    normals: np.ndarray
    faces: np.ndarray
    surface: np.ndarray
    rgb: np.ndarray


def _grid(origin: np.ndarray, eu: np.ndarray, ev: np.ndarray, spacing: float):
    """Vertices (nu*nv, 3) of the parallelogram origin + [0,1] eu + [0,1] ev and its triangles."""
    nu = max(2, int(np.ceil(np.linalg.norm(eu) / spacing)) + 1)
    nv = max(2, int(np.ceil(np.linalg.norm(ev) / spacing)) + 1)
    a, b = np.meshgrid(np.linspace(0, 1, nu), np.linspace(0, 1, nv), indexing="ij")
    verts = origin + a.reshape(-1, 1) * eu + b.reshape(-1, 1) * ev
    idx = np.arange(nu * nv).reshape(nu, nv)
    p00, p10, p11, p01 = idx[:-1, :-1].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel(), idx[:-1, 1:].ravel()
    tris = np.concatenate([np.stack([p00, p10, p11], 1), np.stack([p00, p11, p01], 1)])
    return verts, tris


def _box_faces(half: np.ndarray, spacing: float, inward: bool = False, only_normal: np.ndarray | None = None):
    """Local-frame faces of a box: yields (vertices, triangles, normal)."""
    for axis in range(3):
        for sign in (-1.0, 1.0):
            normal = np.zeros(3)
            normal[axis] = -sign if inward else sign
            if only_normal is not None and not np.allclose(normal, only_normal):
                continue
            u_axis, v_axis = [a for a in range(3) if a != axis]
            eu, ev = np.zeros(3), np.zeros(3)
            eu[u_axis], ev[v_axis] = 2 * half[u_axis], 2 * half[v_axis]
            if np.dot(np.cross(eu, ev), normal) < 0:
                eu, ev = ev, eu
            center = np.zeros(3)
            center[axis] = sign * half[axis]
            verts, tris = _grid(center - eu / 2 - ev / 2, eu, ev, spacing)
            yield verts, tris, np.broadcast_to(normal, verts.shape)


def _cylinder_faces(radius: float, half_height: float, spacing: float):
    n_theta = max(8, int(np.ceil(2 * np.pi * radius / spacing)))
    n_z = max(2, int(np.ceil(2 * half_height / spacing)) + 1)
    theta = 2 * np.pi * np.arange(n_theta) / n_theta
    z = np.linspace(-half_height, half_height, n_z)
    tt, zz = np.meshgrid(theta, z, indexing="ij")
    side = np.stack([radius * np.cos(tt).ravel(), radius * np.sin(tt).ravel(), zz.ravel()], axis=1)
    idx = np.arange(n_theta * n_z).reshape(n_theta, n_z)
    nxt = np.roll(idx, -1, axis=0)
    a, b, c, d = idx[:, :-1].ravel(), nxt[:, :-1].ravel(), nxt[:, 1:].ravel(), idx[:, 1:].ravel()
    tris = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
    normals = np.stack([np.cos(tt).ravel(), np.sin(tt).ravel(), np.zeros(side.shape[0])], axis=1)
    yield side, tris, normals
    n_rings = max(1, int(np.ceil(radius / spacing)))
    for sign in (-1.0, 1.0):
        radii = radius * np.arange(1, n_rings + 1) / n_rings
        rr, th = np.meshgrid(radii, theta, indexing="ij")  # (n_rings, n_theta)
        ring = np.stack([rr.ravel() * np.cos(th.ravel()), rr.ravel() * np.sin(th.ravel()),
                         np.full(rr.size, sign * half_height)], axis=1)
        verts = np.vstack([[0.0, 0.0, sign * half_height], ring])
        ridx = 1 + np.arange(n_rings * n_theta).reshape(n_rings, n_theta)
        rnext = np.roll(ridx, -1, axis=1)
        fan = np.stack([np.zeros(n_theta, dtype=np.int64), ridx[0], rnext[0]], 1)
        quads_a = np.stack([ridx[:-1].ravel(), ridx[1:].ravel(), rnext[1:].ravel()], 1)
        quads_b = np.stack([ridx[:-1].ravel(), rnext[1:].ravel(), rnext[:-1].ravel()], 1)
        tris = np.concatenate([fan, quads_a, quads_b])
        if sign < 0:
            tris = tris[:, ::-1]
        yield verts, tris, np.broadcast_to([0.0, 0.0, sign], verts.shape)


def visible_surface_points(surfaces: SurfaceSet, xyz: np.ndarray, surface: np.ndarray, tol: float = 2e-4) -> np.ndarray:
    """(N,) bool: points (N, 3) on surfaces ``surface`` (N,) that a scanner could see -- inside the
    room and not strictly inside another primitive (by more than ``tol`` metres)."""
    keep = np.all((xyz > -tol) & (xyz < surfaces.room_size + tol), axis=1)
    lo, hi = surfaces.aabb()
    for j in range(NUM_ROOM_FACES, len(surfaces)):
        cand = np.flatnonzero(keep & np.all((xyz > lo[j]) & (xyz < hi[j]), axis=1) & (surface != j))
        if len(cand):
            keep[cand[points_inside(surfaces, j, xyz[cand], tol)]] = False
    return keep


def build_mesh(surfaces: SurfaceSet, spacing_m: float) -> SceneMesh:
    """Triangulate all surfaces, drop never-visible vertices, colour every vertex."""
    xyz, normals, faces, surface = [], [], [], []
    offset = 0
    for i in range(len(surfaces)):
        kind = surfaces.kind[i]
        if kind == SurfaceKind.ROOM_FACE:
            pieces = _box_faces(surfaces.half[i], spacing_m, inward=True, only_normal=ROOM_FACE_NORMALS[i])
        elif kind == SurfaceKind.BOX:
            pieces = _box_faces(surfaces.half[i], spacing_m)
        else:
            pieces = _cylinder_faces(surfaces.half[i, 0], surfaces.half[i, 2], spacing_m)
        for verts, tris, nrm in pieces:
            xyz.append(surfaces.center[i] + surfaces.vector_to_room(i, verts))
            normals.append(surfaces.vector_to_room(i, np.asarray(nrm)))
            faces.append(tris + offset)
            surface.append(np.full(len(verts), i, dtype=np.int32))
            offset += len(verts)
    xyz, normals = np.concatenate(xyz), np.concatenate(normals)
    faces, surface = np.concatenate(faces), np.concatenate(surface)

    keep = visible_surface_points(surfaces, xyz, surface)
    faces = faces[keep[faces].all(axis=1)]
    used = np.zeros(len(xyz), dtype=bool)
    used[faces.ravel()] = True
    remap = np.cumsum(used) - 1
    xyz, normals, surface = xyz[used], normals[used], surface[used]
    faces = remap[faces].astype(np.int32)
    colors = surface_colors(surfaces, surface, xyz, normals)
    rgb = np.round(colors * 255.0).astype(np.uint8)
    return SceneMesh(xyz, normals, faces, surface, rgb)
