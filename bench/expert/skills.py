"""Skill library: generators that yield 7-D actions, reading privileged state every step.

Every skill is `def skill(ctx, ...) -> Generator[action]`; `ctx` is the `Expert` (scene, servo,
current yaw and gripper). A skill returns (StopIteration) when its sub-goal is reached or it
times out; plans chain skills with `yield from`.
"""

from __future__ import annotations

import os

import numpy as np

from bench.expert.control import target_rot

OPEN, CLOSE = -1.0, 1.0
BOWL_DEPTH = float(os.environ.get("BOWL_DEPTH", 0.018))  # rim grasp: below the rim top
BOWL_INSET = float(os.environ.get("BOWL_INSET", 0.008))  # grip point inside the outer radius


def move(ctx, pos, yaw=None, grip=None, tol=0.01, rot_tol=0.08, max_steps=80, cap=1.0,
         tilt=None):
    """Servo the grip site to `pos` (and yaw); stop within tolerance or after max_steps."""
    if yaw is not None:
        ctx.yaw = yaw
    if grip is not None:
        ctx.grip = grip
    rot = target_rot(ctx.yaw, tilt)
    pos = np.asarray(pos, dtype=float)
    hist = []
    for _ in range(max_steps):
        ep, er = ctx.servo.errors(pos, rot)
        e = np.linalg.norm(ep) + 0.05 * np.linalg.norm(er)
        if np.linalg.norm(ep) < tol and np.linalg.norm(er) < rot_tol:
            return
        hist.append(e)
        if len(hist) > 12 and hist[-12] - e < 0.002 and np.linalg.norm(ep) < 3 * tol + 0.01:
            return  # stalled close to the goal (contact, joint limit): move on
        yield ctx.servo.action(pos, rot, ctx.grip, cap=cap)


def move_path(ctx, waypoints, yaw=None, grip=None, pass_tol=0.03, tol=0.01, max_steps=150,
              cap=1.0):
    """Pass through intermediate waypoints (loose tolerance), stop at the last one."""
    steps = 0
    for i, wp in enumerate(waypoints):
        last = i == len(waypoints) - 1
        for a in move(ctx, wp, yaw=yaw, grip=grip, tol=tol if last else pass_tol,
                      rot_tol=0.08 if last else 0.3, max_steps=max_steps - steps, cap=cap):
            steps += 1
            yield a


def hold(ctx, n, grip=None, pos=None):
    """Stay put (at pos or the current position) for n steps, e.g. while the gripper moves."""
    if grip is not None:
        ctx.grip = grip
    if pos is None:
        pos = ctx.scene.eef_pos()
    rot = target_rot(ctx.yaw)
    for _ in range(n):
        yield ctx.servo.action(pos, rot, ctx.grip, cap=0.5)


def gripper(ctx, grip, n=None):
    """Close or open the gripper while holding position (closing waits for the fingers)."""
    pos = ctx.scene.eef_pos()
    ctx.grip = grip
    rot = target_rot(ctx.yaw)
    n_max = n or 12
    last_gap = None
    for i in range(n_max):
        yield ctx.servo.action(pos, rot, ctx.grip, cap=0.5)
        gap = ctx.scene.finger_gap()
        if n is None and i >= 4 and last_gap is not None and abs(gap - last_gap) < 1e-4:
            return
        last_gap = gap


def lift_to(ctx, z, cap=1.0, tol=0.015, max_steps=60):
    p = ctx.scene.eef_pos()
    yield from move(ctx, [p[0], p[1], z], tol=tol, max_steps=max_steps, cap=cap)


# --- grasp planning ---------------------------------------------------------------------------

def _box_distance(scene, g, pts):
    aabb = scene.model.geom_aabb[g]
    c, h = aabb[:3], aabb[3:]
    xm = scene.data.geom_xmat[g].reshape(3, 3)
    local = (pts - scene.data.geom_xpos[g]) @ xm - c
    d = np.maximum(np.abs(local) - h, 0)
    return np.linalg.norm(d, axis=-1)


def clearance(scene, pts, exclude: set[str]) -> float:
    """Smallest distance from points to collision boxes of other objects and fixtures."""
    best = 1.0
    for name in scene.all_objects():
        if name in exclude:
            continue
        for g in scene.geoms(name):
            if scene.model.geom_type[g] not in (6, 5, 3, 2, 7):
                continue
            best = min(best, float(_box_distance(scene, g, pts).min()))
    return best


def finger_points(center, u, z_lo, z_hi, half_gap=0.045):
    pts = []
    for s in (-1, 1):
        for z in np.linspace(z_lo, z_hi, 4):
            for w in (-0.01, 0.0, 0.01):
                v = np.array([-u[1], u[0], 0.0])
                pts.append(center + s * half_gap * u + w * v + [0, 0, z - center[2]])
    return np.array(pts)


def bowl_grasp(ctx, name, exclude=()):
    """Rim grasp for a bowl/ramekin: finger axis radial, side chosen by clearance."""
    s = ctx.scene
    lo, hi = s.bbox(name)
    c = (lo + hi) / 2
    radius = (hi[0] - lo[0] + hi[1] - lo[1]) / 4
    z = hi[2] - BOWL_DEPTH
    best = None
    for ang in np.linspace(-np.pi, np.pi, 24, endpoint=False):
        u = np.array([np.cos(ang), np.sin(ang), 0.0])
        g = np.array([c[0], c[1], z]) + (radius - BOWL_INSET) * u
        pts = np.concatenate([finger_points(g, u, z - 0.01, z + 0.05, half_gap=0.04),
                              finger_points(g, u, z + 0.07, z + 0.12, half_gap=0.03)])
        clr = clearance(s, pts, {name, *exclude})
        # prefer the robot side (-x) a little, and reachable (not too far in +x)
        score = min(clr, 0.03) + 0.003 * (-u[0])
        if best is None or score > best[0]:
            best = (score, g, u)
    _, g, u = best
    return g, s.choose_yaw(u)


def body_grasp(ctx, name, exclude=()):
    """Top-down grasp across the short horizontal side, depth by height."""
    s = ctx.scene
    lo, hi = s.bbox(name)
    c = (lo + hi) / 2
    u, short, _long = s.footprint_axes(name)
    h = hi[2] - lo[2]
    z = max(hi[2] - min(0.03, h / 2), lo[2] + 0.012)
    g = np.array([c[0], c[1], z])
    return g, s.choose_yaw(u)


def is_bowl_like(name: str) -> bool:
    return any(k in name for k in ("bowl", "ramekin"))


def pick(ctx, name, carry_z, exclude=(), tries=2):
    """Reach, grasp and lift `name` to grip-site height carry_z. Retries a failed grasp."""
    s = ctx.scene
    for _ in range(tries):
        z0 = s.pos(name)[2]
        if is_bowl_like(name):
            g, yaw = bowl_grasp(ctx, name, exclude)
        else:
            g, yaw = body_grasp(ctx, name, exclude)
        site = g + [0, 0, 0.0]
        pre = site + [0, 0, 0.08]
        p = s.eef_pos()
        path = []
        if p[2] < pre[2] - 0.02:
            path.append([p[0], p[1], pre[2]])
        path.append(pre)
        yield from move_path(ctx, path, yaw=yaw, grip=OPEN, pass_tol=0.04, tol=0.02,
                             max_steps=90)
        yield from move(ctx, site, tol=0.006, max_steps=40, cap=0.6)
        yield from gripper(ctx, CLOSE)
        yield from lift_to(ctx, s.eef_pos()[2] + 0.04, cap=0.6, max_steps=20)
        if s.pos(name)[2] > z0 + 0.02 and s.finger_gap() > 0.002:
            yield from lift_to(ctx, carry_z, max_steps=60)
            return True
        yield from gripper(ctx, OPEN, n=6)
        yield from lift_to(ctx, s.eef_pos()[2] + 0.06, max_steps=20)
    return False


def place(ctx, name, target_xy, release_bottom_z, carry_z, settle=True):
    """Carry `name` (held) over target_xy, lower its bottom to release_bottom_z, let go."""
    s = ctx.scene
    lo, _ = s.bbox(name)
    # keep the held object's origin over the target: compensate the grasp offset live
    for _ in range(120):
        off = s.pos(name) - s.eef_pos()
        goal = np.array([target_xy[0] - off[0], target_xy[1] - off[1], carry_z])
        ep, _ = ctx.servo.errors(goal, target_rot(ctx.yaw))
        if np.linalg.norm(ep[:2]) < 0.012:
            break
        yield ctx.servo.action(goal, target_rot(ctx.yaw), ctx.grip)
    for _ in range(60):
        lo, _ = s.bbox(name)
        off = s.pos(name) - s.eef_pos()
        dz = lo[2] - release_bottom_z
        goal = np.array([target_xy[0] - off[0], target_xy[1] - off[1], s.eef_pos()[2] - dz])
        if dz < 0.006:
            break
        yield ctx.servo.action(goal, target_rot(ctx.yaw), ctx.grip, cap=0.7)
    yield from gripper(ctx, OPEN, n=6)
    p = s.eef_pos()
    yield from move(ctx, [p[0], p[1], p[2] + 0.08], tol=0.02, max_steps=25)
