"""Smooth hand-held camera walks around a room (room frame)."""

from __future__ import annotations

import numpy as np

from jointwsss.geometry.camera import look_at
from jointwsss.synth.layout import CAMERA_WALL_INSET_M

CAMERA_HEIGHT_RANGE_M = (1.2, 1.7)


def camera_walk(room_size: np.ndarray, num_frames: int, rng: np.random.Generator) -> np.ndarray:
    """(F, 4, 4) float64 camera_to_world poses (room frame) of a walk around the room.

    The camera walks a rounded loop at least ``CAMERA_WALL_INSET_M`` from the walls, at 1.2-1.7 m,
    looking mostly outwards at the walls and furniture with its yaw sweeping back and forth (now
    and then across the room), pitched 8-30 degrees down, with a slight roll; every pose is a smooth
    function of time. Now and then (a smooth "look down" phase, as people scanning a room do) the
    camera turns inwards and tilts down to 40-65 degrees, looking at the floor and the furniture in
    the middle of the room: those frames see no wall, as a share of real ScanNet frames don't, which
    is what lets a classifier trained from image labels tell walls from the rest.
    """
    lx, ly, _ = room_size
    center = np.array([lx / 2.0, ly / 2.0])
    inset = CAMERA_WALL_INSET_M + rng.uniform(0.0, 0.35)
    ax, ay = max(lx / 2.0 - inset, 0.2), max(ly / 2.0 - inset, 0.2)
    s = np.linspace(0.0, 1.0, num_frames)
    direction = rng.choice([-1.0, 1.0])
    theta = rng.uniform(0, 2 * np.pi) + direction * 2 * np.pi * rng.uniform(0.9, 1.3) * s
    # Superellipse (exponent 4): a rounded rectangle that follows the walls.
    c, sn = np.cos(theta), np.sin(theta)
    shrink = 1.0 - 0.12 * (0.5 + 0.5 * np.sin(3 * theta + rng.uniform(0, 2 * np.pi)))
    x = center[0] + ax * shrink * np.sign(c) * np.abs(c) ** 0.5
    y = center[1] + ay * shrink * np.sign(sn) * np.abs(sn) ** 0.5
    lo, hi = CAMERA_HEIGHT_RANGE_M
    mid = rng.uniform(lo + 0.1, hi - 0.1)
    z = np.clip(mid + 0.12 * np.sin(2 * np.pi * rng.uniform(1.0, 2.5) * s + rng.uniform(0, 2 * np.pi)), lo, hi)

    outward = np.arctan2(y - center[1], x - center[0])
    sweep_amp = rng.uniform(0.7, 1.9)
    sweep = sweep_amp * np.sin(2 * np.pi * rng.uniform(2.0, 4.0) * s + rng.uniform(0, 2 * np.pi))
    # look-down phases: a smooth bump in [0, 1] that is 0 most of the time (sin^6 of a slow wave)
    down = np.sin(np.pi * rng.uniform(1.5, 3.0) * s + rng.uniform(0, np.pi)) ** 6
    yaw = outward + (1.0 - down) * sweep + down * np.pi
    tilt = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(1.0, 3.0) * s + rng.uniform(0, 2 * np.pi))
    pitch = -((1.0 - down) * (0.14 + 0.38 * tilt) + down * (0.70 + 0.43 * tilt))
    roll = 0.03 * np.sin(2 * np.pi * rng.uniform(1.0, 3.0) * s + rng.uniform(0, 2 * np.pi))

    poses = np.empty((num_frames, 4, 4))
    for k in range(num_frames):
        eye = np.array([x[k], y[k], z[k]])
        forward = np.array([np.cos(yaw[k]) * np.cos(pitch[k]), np.sin(yaw[k]) * np.cos(pitch[k]), np.sin(pitch[k])])
        pose = look_at(eye, eye + forward)
        cr, sr = np.cos(roll[k]), np.sin(roll[k])
        roll_about_forward = np.array([[cr, -sr, 0.0], [sr, cr, 0.0], [0.0, 0.0, 1.0]])
        pose[:3, :3] = pose[:3, :3] @ roll_about_forward
        poses[k] = pose
    return poses
