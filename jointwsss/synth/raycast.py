"""The scene's surfaces as arrays, and vectorised ray casting against them (numpy only).

A scene is a room (an axis-aligned box [0, Lx] x [0, Ly] x [0, H] seen from inside, split into six
face surfaces: floor, ceiling, four walls) plus primitives: oriented boxes (yaw about z) and
vertical cylinders. Everything lives in the *room frame* (metres, z up); the writer moves the
result into ScanNet's unaligned world frame afterwards.

The renderer, the depth sensor and the mesh all use these same surfaces, so a mesh vertex
projects onto the pixel that shows it. Ray casting is screen-space culled: each primitive's
bounding box is projected into the image and only the rays inside that rectangle are tested.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from jointwsss.geometry.camera import world_to_camera
from jointwsss.synth.texture import FacePoints, Material, shade


class SurfaceKind(IntEnum):
    ROOM_FACE = 0
    BOX = 1
    CYLINDER = 2


# Room faces are surfaces 0..5, in this order; their inward normals.
ROOM_FACE_NAMES = ("floor", "ceiling", "wall_y0", "wall_xmax", "wall_ymax", "wall_x0")
ROOM_FACE_NORMALS = np.array(
    [(0, 0, 1), (0, 0, -1), (0, 1, 0), (-1, 0, 0), (0, -1, 0), (1, 0, 0)], dtype=np.float64
)
NUM_ROOM_FACES = 6
FLOOR, CEILING = 0, 1

# Hits closer than this (metres) are ignored: nothing is ever that close to the camera.
NEAR_M = 0.02


@dataclass
class SurfaceSet:
    """All surfaces of a scene (room frame), one row per surface.

    ``kind`` (S,) SurfaceKind; ``center`` (S, 3) metres; ``half`` (S, 3) half extents in the local
    frame (boxes: x, y, z; cylinders: radius, radius, half height; room faces: the room's half
    extents); ``yaw`` (S,) radians about z (local x = (cos, sin, 0)); ``nyu40`` (S,) uint16 class;
    ``raw_id`` (S,) uint16 ScanNet raw category id; ``object_index`` (S,) int32 (room faces count
    as objects too); ``materials`` one per surface.
    """

    room_size: np.ndarray
    kind: np.ndarray
    center: np.ndarray
    half: np.ndarray
    yaw: np.ndarray
    nyu40: np.ndarray
    raw_id: np.ndarray
    object_index: np.ndarray
    materials: list[Material]
    cos: np.ndarray = field(init=False)
    sin: np.ndarray = field(init=False)
    bound_corners: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.cos = np.cos(self.yaw)
        self.sin = np.sin(self.yaw)
        # (S, 8, 3) corners of a box bounding each surface (room faces: the face rectangle).
        signs = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float64)
        local = signs[None, :, :] * self.half[:, None, :]
        is_cyl = self.kind == SurfaceKind.CYLINDER
        c, s = np.where(is_cyl, 1.0, self.cos), np.where(is_cyl, 0.0, self.sin)
        world = np.empty_like(local)
        world[..., 0] = c[:, None] * local[..., 0] - s[:, None] * local[..., 1]
        world[..., 1] = s[:, None] * local[..., 0] + c[:, None] * local[..., 1]
        world[..., 2] = local[..., 2]
        self.bound_corners = world + self.center[:, None, :]

    def __len__(self) -> int:
        return len(self.kind)

    def to_local(self, i: int, points: np.ndarray) -> np.ndarray:
        """(N, 3) room-frame points in surface ``i``'s local frame (centred, un-yawed)."""
        d = points - self.center[i]
        c, s = self.cos[i], self.sin[i]
        return np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1], d[:, 2]], axis=1)

    def vector_to_local(self, i: int, v: np.ndarray) -> np.ndarray:
        c, s = self.cos[i], self.sin[i]
        return np.stack([c * v[:, 0] + s * v[:, 1], -s * v[:, 0] + c * v[:, 1], v[:, 2]], axis=1)

    def vector_to_room(self, i: int, v: np.ndarray) -> np.ndarray:
        c, s = self.cos[i], self.sin[i]
        return np.stack([c * v[:, 0] - s * v[:, 1], s * v[:, 0] + c * v[:, 1], v[:, 2]], axis=1)

    def aabb(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-surface axis-aligned bounds (S, 3) min and max, room frame."""
        return self.bound_corners.min(axis=1), self.bound_corners.max(axis=1)


# --------------------------------------------------------------------------------- intersections


def room_surface_set(room_size: np.ndarray, faces, parts) -> SurfaceSet:
    """A room's SurfaceSet: its six faces (``ROOM_FACE_NAMES`` order) then the objects' parts.

    faces: one ``(material, nyu40, raw_id, object_index)`` per room face; parts: ``(part, nyu40,
    raw_id, object_index)`` per object part (a part has ``kind``, ``center``, ``half``, ``yaw``,
    ``material``). Room faces are centred on the room with its half extents as their own.
    """
    room_size = np.asarray(room_size, dtype=np.float64)
    half = room_size / 2.0
    rows = [(SurfaceKind.ROOM_FACE, half, half, 0.0, material, nyu, raw, obj) for material, nyu, raw, obj in faces]
    rows += [(p.kind, p.center, p.half, p.yaw, p.material, nyu, raw, obj) for p, nyu, raw, obj in parts]
    kinds, centers, halves, yaws, mats, nyus, raws, objs = zip(*rows)
    return SurfaceSet(
        room_size=room_size,
        kind=np.asarray(kinds, dtype=np.int8),
        center=np.asarray(centers, dtype=np.float64),
        half=np.asarray(halves, dtype=np.float64),
        yaw=np.asarray(yaws, dtype=np.float64),
        nyu40=np.asarray(nyus, dtype=np.uint16),
        raw_id=np.asarray(raws, dtype=np.uint16),
        object_index=np.asarray(objs, dtype=np.int32),
        materials=list(mats),
    )


def intersect_box(origin: np.ndarray, dx: np.ndarray, dy: np.ndarray, dz: np.ndarray, half: np.ndarray) -> np.ndarray:
    """Slab test in the box frame: origin (3,), direction components dx, dy, dz (same shape);
    returns the entry t (same shape), inf on a miss."""
    t_near, t_far = None, None
    with np.errstate(divide="ignore", invalid="ignore"):
        for o, d, h in zip(origin, (dx, dy, dz), half):
            inv = 1.0 / d
            t1 = (-h - o) * inv
            t2 = (h - o) * inv
            lo, hi = np.minimum(t1, t2), np.maximum(t1, t2)
            t_near = lo if t_near is None else np.maximum(t_near, lo)
            t_far = hi if t_far is None else np.minimum(t_far, hi)
    hit = (t_near <= t_far) & (t_near > NEAR_M)
    return np.where(hit, t_near, np.inf)


def intersect_cylinder(origin: np.ndarray, dx: np.ndarray, dy: np.ndarray, dz: np.ndarray, radius: float,
                       half_height: float) -> np.ndarray:
    """Vertical cylinder (axis z, centred at 0) in its frame: side quadratic plus caps; t, inf on a miss."""
    ox, oy, oz = origin
    a = dx * dx + dy * dy
    b = 2.0 * (ox * dx + oy * dy)
    c = ox * ox + oy * oy - radius * radius
    disc = b * b - 4.0 * a * c
    with np.errstate(divide="ignore", invalid="ignore"):
        t_side = (-b - np.sqrt(np.maximum(disc, 0.0))) / (2.0 * a)
        z_side = oz + t_side * dz
        side_ok = (disc >= 0) & (a > 1e-12) & (t_side > NEAR_M) & (np.abs(z_side) <= half_height)
        cap_z = np.where(dz < 0, half_height, -half_height)
        t_cap = (cap_z - oz) / dz
        cx, cy = ox + t_cap * dx, oy + t_cap * dy
        cap_ok = (t_cap > NEAR_M) & (cx * cx + cy * cy <= radius * radius) & np.isfinite(t_cap)
    return np.minimum(np.where(side_ok, t_side, np.inf), np.where(cap_ok, t_cap, np.inf))


def _room_hit(room_size: np.ndarray, origin: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exit of rays from inside the room box: t (N,) and the room face id (N,) they hit."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t_pos = (room_size - origin) / dirs  # for positive components
        t_neg = -origin / dirs  # for negative components
    t_axis = np.where(dirs > 0, t_pos, np.where(dirs < 0, t_neg, np.inf))
    axis = np.argmin(t_axis, axis=1)
    t = t_axis[np.arange(len(dirs)), axis]
    positive = dirs[np.arange(len(dirs)), axis] > 0
    # axis 0: +x -> wall_xmax (3), -x -> wall_x0 (5); axis 1: +y -> wall_ymax (4), -y -> wall_y0 (2);
    # axis 2: +z -> ceiling (1), -z -> floor (0)
    face_pos = np.array([3, 4, CEILING])
    face_neg = np.array([5, 2, FLOOR])
    face = np.where(positive, face_pos[axis], face_neg[axis])
    return t, face


def cast(surfaces: SurfaceSet, K: np.ndarray, camera_to_world: np.ndarray, width: int, height: int):
    """Ray cast one image (room frame pose, pixel centres at integer coordinates).

    Returns ``depth`` (H, W) float64 metres along the optical axis (the ray parameter, because
    directions have unit camera-z), ``surface`` (H, W) int32 surface index of the first hit (the
    camera is inside the room, so every ray hits something) and ``dirs`` (H, W, 3) float64 ray
    directions; the hit point of pixel (v, u) is ``camera centre + depth[v, u] * dirs[v, u]``.
    """
    K = np.asarray(K, dtype=np.float64)
    pose = np.asarray(camera_to_world, dtype=np.float64)
    origin = pose[:3, 3]
    u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    cam = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], axis=-1)
    dirs = cam @ pose[:3, :3].T
    t, face = _room_hit(surfaces.room_size, origin, dirs.reshape(-1, 3))
    depth = t.reshape(height, width)
    surface = face.reshape(height, width).astype(np.int32)

    # Screen-space culling: project every primitive's bounding corners.
    w2c = world_to_camera(pose)
    corners = surfaces.bound_corners[NUM_ROOM_FACES:]
    cam_corners = corners @ w2c[:3, :3].T + w2c[:3, 3]
    z = cam_corners[..., 2]
    all_front = (z > NEAR_M).all(axis=1)
    any_front = (z > NEAR_M).any(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        pu = K[0, 0] * cam_corners[..., 0] / z + K[0, 2]
        pv = K[1, 1] * cam_corners[..., 1] / z + K[1, 2]
    u0 = np.where(all_front, np.floor(pu.min(axis=1)), 0).clip(0, width)
    u1 = np.where(all_front, np.ceil(pu.max(axis=1)) + 1, width).clip(0, width)
    v0 = np.where(all_front, np.floor(pv.min(axis=1)), 0).clip(0, height)
    v1 = np.where(all_front, np.ceil(pv.max(axis=1)) + 1, height).clip(0, height)
    candidates = np.flatnonzero(any_front & (u1 > u0) & (v1 > v0))
    dir_x, dir_y, dir_z = dirs[..., 0], dirs[..., 1], dirs[..., 2]
    for j in candidates:
        i = j + NUM_ROOM_FACES
        ra, rb, ca, cb = int(v0[j]), int(v1[j]), int(u0[j]), int(u1[j])
        sx, sy, sz = dir_x[ra:rb, ca:cb], dir_y[ra:rb, ca:cb], dir_z[ra:rb, ca:cb]
        # Origin and directions both go into the surface's local frame (cylinders carry the yaw
        # of their object too; it does not change their shape but must be applied consistently).
        o_local = surfaces.to_local(i, origin[None, :])[0]
        c, s = surfaces.cos[i], surfaces.sin[i]
        lx, ly = c * sx + s * sy, c * sy - s * sx
        if surfaces.kind[i] == SurfaceKind.BOX:
            t_hit = intersect_box(o_local, lx, ly, sz, surfaces.half[i])
        else:
            t_hit = intersect_cylinder(o_local, lx, ly, sz, surfaces.half[i, 0], surfaces.half[i, 2])
        depth_view = depth[ra:rb, ca:cb]
        closer = t_hit < depth_view
        depth_view[closer] = t_hit[closer]
        surface[ra:rb, ca:cb][closer] = i
    return depth, surface, dirs


# ------------------------------------------------------------------------------ normals, colours


def group_indices(ids: np.ndarray):
    """Yield (id, indices) for every distinct value of the 1-D int array ``ids``."""
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    ends = np.r_[starts[1:], len(ids)]
    for a, b in zip(starts, ends):
        yield int(sorted_ids[a]), order[a:b]


def surface_normals(surfaces: SurfaceSet, i: int, points: np.ndarray) -> np.ndarray:
    """(N, 3) outward unit normals (room faces: inward) of surface ``i`` at points lying on it."""
    kind = surfaces.kind[i]
    if kind == SurfaceKind.ROOM_FACE:
        return np.broadcast_to(ROOM_FACE_NORMALS[i], points.shape).copy()
    p = surfaces.to_local(i, points)
    half = surfaces.half[i]
    local_n = np.zeros_like(p)
    if kind == SurfaceKind.BOX:
        axis = np.argmax(np.abs(p) / half, axis=1)
        local_n[np.arange(len(p)), axis] = np.sign(p[np.arange(len(p)), axis])
    else:
        rho = np.hypot(p[:, 0], p[:, 1])
        on_cap = (half[2] - np.abs(p[:, 2])) < (half[0] - rho)
        local_n[:, 2] = np.where(on_cap, np.sign(p[:, 2]), 0.0)
        safe = np.maximum(rho, 1e-9)
        local_n[:, 0] = np.where(on_cap, 0.0, p[:, 0] / safe)
        local_n[:, 1] = np.where(on_cap, 0.0, p[:, 1] / safe)
    return surfaces.vector_to_room(i, local_n)


def face_points(surfaces: SurfaceSet, i: int, points: np.ndarray, normals: np.ndarray) -> FacePoints:
    """In-face coordinates of points (N, 3) with normals (N, 3) on surface ``i`` (see FacePoints)."""
    p = surfaces.to_local(i, points)
    half = surfaces.half[i]
    n_local = surfaces.vector_to_local(i, normals)
    if surfaces.kind[i] == SurfaceKind.CYLINDER:
        side = np.abs(n_local[:, 2]) < 0.5
        radius, hz = half[0], half[2]
        s = np.where(side, np.arctan2(p[:, 1], p[:, 0]) * radius, p[:, 0])
        t = np.where(side, p[:, 2], p[:, 1])
        border = np.where(side, hz - np.abs(p[:, 2]), radius - np.hypot(p[:, 0], p[:, 1]))
        axis = np.where(side, 0, 2)
        half_t = np.where(side, hz, radius)
        return FacePoints(p, s, t, border, axis, half_t)
    axis = np.argmax(np.abs(n_local), axis=1)
    s_axis = np.where(axis == 0, 1, 0)
    t_axis = np.where(axis == 2, 1, 2)
    rows = np.arange(len(p))
    s, t = p[rows, s_axis], p[rows, t_axis]
    half_s, half_t = half[s_axis], half[t_axis]
    border = np.minimum(half_s - np.abs(s), half_t - np.abs(t))
    return FacePoints(p, s, t, border, axis, half_t)


def surface_colors(surfaces: SurfaceSet, ids: np.ndarray, points: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """(N, 3) shaded RGB in [0, 1] of points (N, 3) with normals (N, 3) on surfaces ``ids`` (N,)."""
    out = np.zeros((len(ids), 3))
    for i, idx in group_indices(ids):
        fp = face_points(surfaces, i, points[idx], normals[idx])
        out[idx] = shade(fp, surfaces.materials[i], normals[idx])
    return out


def points_inside(surfaces: SurfaceSet, i: int, points: np.ndarray, tol: float = 2e-4) -> np.ndarray:
    """(N,) bool: strictly inside primitive ``i`` (by more than ``tol`` metres)."""
    p = surfaces.to_local(i, points)
    half = surfaces.half[i] - tol
    if surfaces.kind[i] == SurfaceKind.BOX:
        return np.all(np.abs(p) < half, axis=1)
    return (np.hypot(p[:, 0], p[:, 1]) < half[0]) & (np.abs(p[:, 2]) < half[2])
