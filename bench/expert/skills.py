"""Skill library: generators that yield 7-D actions, reading privileged state every step.

Every skill is `def skill(ctx, ...) -> Generator[action]`; `ctx` is the `Expert` (scene, servo,
current yaw and gripper). A skill returns (StopIteration) when its sub-goal is reached or it
times out; plans chain skills with `yield from`.
"""

from __future__ import annotations

import os

import numpy as np

from bench.expert.control import target_rot
from bench.expert.geometry import R_DOWN, mat2axisangle, rotz

OPEN, CLOSE = -1.0, 1.0
BOWL_DEPTH = float(os.environ.get("BOWL_DEPTH", 0.018))  # rim grasp: below the rim top
TRAVEL_HIGH = os.environ.get("TRAVEL_HIGH", "1") == "1"
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


def finger_axis(yaw: float) -> np.ndarray:
    """Horizontal direction the fingers separate along at grip-site yaw `yaw`."""
    return rotz(yaw) @ R_DOWN[:, 0]


def hand_points(center: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Sample points of the hand body above a top-down grip site at `center` (finger axis u):
    ~20 cm along the finger axis, ~6 cm across, 6-20 cm above the fingertips (also covers
    the vertical descent from the pre-grasp pose)."""
    v = np.array([-u[1], u[0], 0.0])
    pts = [center + a * u + b * v + [0, 0, dz]
           for a in np.linspace(-0.1, 0.1, 9) for b in (-0.03, 0.03)
           for dz in (0.065, 0.12, 0.2)]
    return np.array(pts)


def bowl_grasp(ctx, name, exclude=(), hand: bool = False):
    """Rim grasp for a bowl/ramekin/mug: finger axis radial, side chosen by clearance (with
    `hand`, also of the whole hand body, e.g. under an open drawer). A mug's rim centre comes
    from its wall geoms (its origin and bounding box are off-centre by the handle), and the
    fingers keep off the handle."""
    s = ctx.scene
    lo, hi = s.bbox(name)
    c = (lo + hi) / 2
    radius = (hi[0] - lo[0] + hi[1] - lo[1]) / 4
    handle: list[int] = []
    if "mug" in name:  # the rim is the geoms reaching the top; the handle stays lower
        c, radius, handle, _ = mug_parts(s, name)
    z = hi[2] - BOWL_DEPTH
    best = None
    for ang in np.linspace(-np.pi, np.pi, 24, endpoint=False):
        u = np.array([np.cos(ang), np.sin(ang), 0.0])
        g = np.array([c[0], c[1], z]) + (radius - BOWL_INSET) * u
        pts = [finger_points(g, u, z - 0.01, z + 0.05, half_gap=0.04),
               finger_points(g, u, z + 0.07, z + 0.12, half_gap=0.03)]
        if hand:
            pts.append(hand_points(g, u))
        pts = np.concatenate(pts)
        if handle and min(float(_box_distance(s, h, pts).min()) for h in handle) < 0.01:
            continue  # not over the mug's own handle
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


def handle_grasp(ctx, name):
    """Pinch the top bar of an object's handle (moka pots: their hexagonal body is as wide
    as the open fingers and the hand would hit the lid over a low body grasp). The handle is
    the cluster of geoms farthest out from the body origin in the horizontal plane."""
    s = ctx.scene
    o = s.pos(name)
    gs = s.geoms(name)
    cen = {g: s.geom_corners(g).mean(0) for g in gs}
    far = max(np.linalg.norm((cen[g] - o)[:2]) for g in gs)
    arm = [g for g in gs if np.linalg.norm((cen[g] - o)[:2]) > 0.6 * far]
    # two clusters (handle, spout) by direction; the handle reaches out farther
    ref = max(arm, key=lambda g: np.linalg.norm((cen[g] - o)[:2]))
    d = (cen[ref] - o)[:2]
    d /= np.linalg.norm(d)
    handle = [g for g in arm if (cen[g] - o)[:2] @ d > 0]
    pts = np.concatenate([s.geom_corners(g) for g in handle])
    top = pts[:, 2].max()
    bar = pts[pts[:, 2] > top - 0.03]
    r = (bar[:, :2] - o[:2]) @ d
    g = o.copy()
    g[:2] += (r.min() + r.max()) / 2 * d
    g[2] = top - 0.012
    perp = np.array([-d[1], d[0], 0.0])
    return g, s.choose_yaw(perp)


HANDLED = ("moka_pot",)  # objects grasped by their handle


def object_grasp(ctx, name, exclude=(), hand: bool = False):
    """(grip-site point, yaw) for a top-down grasp of `name`, by object kind."""
    if is_bowl_like(name):
        return bowl_grasp(ctx, name, exclude, hand=hand)
    if any(k in name for k in HANDLED):
        return handle_grasp(ctx, name)
    return body_grasp(ctx, name, exclude)


def is_bowl_like(name: str) -> bool:
    """Open vessels wider than the fingers' opening: grasped by the rim."""
    return any(k in name for k in ("bowl", "ramekin", "mug"))


def pick(ctx, name, carry_z, exclude=(), tries=2, hand: bool = False, grasp=None):
    """Reach, grasp and lift `name` to grip-site height carry_z. Retries a failed grasp.
    `grasp(ctx, name) -> (grip point, yaw)` overrides the grasp chosen by object kind."""
    ctx.sub = "pick"
    s = ctx.scene
    for k in range(tries):
        ctx.sub = f"pick{k}" if k else "pick"
        z0 = s.pos(name)[2]
        if grasp is None:
            g, yaw = object_grasp(ctx, name, exclude, hand=hand)
        else:
            g, yaw = grasp(ctx, name)
        site = g + [0, 0, 0.0]
        pre = site + [0, 0, 0.08]
        p = s.eef_pos()
        path = []
        if p[2] < pre[2] - 0.02:
            path.append([p[0], p[1], pre[2]])
        elif TRAVEL_HIGH and p[2] > pre[2] + 0.03 and np.linalg.norm(p[:2] - pre[:2]) > 0.05:
            path.append([pre[0], pre[1], p[2]])  # travel high, then descend vertically
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


def place(ctx, name, target_xy, release_bottom_z, carry_z, retreat_z=None):
    """Carry `name` (held) over target_xy, lower its bottom to release_bottom_z, let go."""
    ctx.sub = "place"
    s = ctx.scene
    lo, _ = s.bbox(name)
    # keep the held object's origin over the target: compensate the grasp offset live
    for _ in range(120):
        off = s.pos(name) - s.eef_pos()
        if np.linalg.norm(off) > 0.2:
            return  # dropped: do not chase it
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
    up = max(p[2] + 0.08, retreat_z or 0.0)
    yield from move(ctx, [p[0], p[1], up], tol=0.02, max_steps=30)


# --- articulated fixtures -------------------------------------------------------------------

def horizontal_rot(approach: np.ndarray, current: np.ndarray | None = None) -> np.ndarray:
    """Grip-site rotation pointing along horizontal `approach`, fingers separating vertically
    (of the two symmetric choices, the one nearer the `current` rotation)."""
    a = np.asarray(approach, dtype=float)
    a = a / np.linalg.norm(a)
    best = None
    for sx in (1.0, -1.0):
        x = np.array([0.0, 0.0, sx])
        r = np.stack([x, np.cross(a, x), a], axis=1)
        ang = 0.0 if current is None else np.linalg.norm(mat2axisangle(r @ current.T))
        if best is None or ang < best[0]:
            best = (ang, r)
    return best[1]


def move_rot(ctx, pos, rot, grip=None, tol=0.01, rot_tol=0.1, max_steps=80, cap=1.0):
    """Like `move` but with an explicit target rotation matrix."""
    if grip is not None:
        ctx.grip = grip
    pos = np.asarray(pos, dtype=float)
    hist = []
    for _ in range(max_steps):
        ep, er = ctx.servo.errors(pos, rot)
        if np.linalg.norm(ep) < tol and np.linalg.norm(er) < rot_tol:
            return
        e = np.linalg.norm(ep) + 0.05 * np.linalg.norm(er)
        hist.append(e)
        if len(hist) > 12 and hist[-12] - e < 0.002 and np.linalg.norm(ep) < 3 * tol + 0.01:
            return
        yield ctx.servo.action(pos, rot, ctx.grip, cap=cap, rot_cap=1.0)


def drawer_info(scene, cab: str, level: str):
    """(handle centre, pull direction, joint name) of a cabinet drawer."""
    m = scene.model
    b = m.body_name2id(f"{cab}_cabinet_{level}")
    gs = [g for g in range(m.ngeom) if m.geom_bodyid[g] == b and m.geom_type[g] == 6
          and (m.geom_contype[g] or m.geom_conaffinity[g])]
    g = min(gs, key=lambda g: m.geom_pos[g][1])
    r = scene.data.body_xmat[b].reshape(3, 3)
    pull = -r[:, 1]
    pull[2] = 0
    pull /= np.linalg.norm(pull)
    return scene.data.geom_xpos[g].copy(), pull, f"{cab}_{level}_level"


def open_drawer(ctx, cab, level, target_q=-0.155):
    """Approach horizontally, fingers vertical around the handle bar, pull it out."""
    ctx.sub = "open_drawer"
    s = ctx.scene
    handle, pull, joint = drawer_info(s, cab, level)
    rot = horizontal_rot(-pull, s.eef_mat())
    p = s.eef_pos()
    pre = handle + 0.10 * pull
    up = np.array([pre[0], pre[1], max(p[2], handle[2] + 0.05)])
    ctx.grip = OPEN
    yield from move_rot(ctx, up, rot, tol=0.03, rot_tol=0.3, max_steps=60)
    yield from move_rot(ctx, pre, rot, tol=0.012, rot_tol=0.1, max_steps=50)
    handle, pull, joint = drawer_info(s, cab, level)
    yield from move_rot(ctx, handle + 0.005 * pull, rot, tol=0.006, max_steps=40, cap=0.6)
    yield from gripper_rot(ctx, CLOSE, rot)
    start = s.eef_pos()
    for _ in range(60):
        if s.qpos(joint) < target_q:
            break
        goal = start + 0.19 * pull
        yield ctx.servo.action(goal, rot, CLOSE, cap=0.6, rot_cap=1.0)
    yield from gripper_rot(ctx, OPEN, rot, n=5)
    p = s.eef_pos()
    yield from move_rot(ctx, p + 0.06 * pull + [0, 0, 0.04], rot, tol=0.02, max_steps=20)
    # point the gripper down again before the next skill
    p = s.eef_pos()
    yield from move(ctx, p + [0, 0, 0.05], yaw=s.choose_yaw(np.array([0.0, 1.0, 0.0])),
                    tol=0.03, rot_tol=0.12, max_steps=30)


def gripper_rot(ctx, grip, rot, n=None):
    pos = ctx.scene.eef_pos()
    ctx.grip = grip
    last = None
    for i in range(n or 12):
        yield ctx.servo.action(pos, rot, grip, cap=0.5, rot_cap=1.0)
        gap = ctx.scene.finger_gap()
        if n is None and i >= 4 and last is not None and abs(gap - last) < 1e-4:
            return
        last = gap


def pointing_rot(approach: np.ndarray, finger_axis: np.ndarray,
                 current: np.ndarray | None = None) -> np.ndarray:
    """Grip-site rotation pointing along `approach` with the fingers separating along
    `finger_axis` (of the two symmetric choices, the one nearer the `current` rotation)."""
    a = np.asarray(approach, dtype=float)
    a = a / np.linalg.norm(a)
    best = None
    for sx in (1.0, -1.0):
        x = sx * np.asarray(finger_axis, dtype=float)
        x = x - (x @ a) * a
        x /= np.linalg.norm(x)
        r = np.stack([x, np.cross(a, x), a], axis=1)
        ang = 0.0 if current is None else np.linalg.norm(mat2axisangle(r @ current.T))
        if best is None or ang < best[0]:
            best = (ang, r)
    return best[1]


def axis_rot(axis: np.ndarray, ang: float) -> np.ndarray:
    """Rotation matrix of `ang` radians about unit `axis` (Rodrigues)."""
    k = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + np.sin(ang) * kx + (1 - np.cos(ang)) * kx @ kx


def close_drawer(ctx, cab, level, tilt_deg: float = 45.0):
    """Push the drawer shut with the closed fingertips on its handle. The gripper points down
    and tilts towards the cabinet, fingers side by side, so the hand trails the fingertips and
    stays clear of the cabinet front and the drawers above."""
    ctx.sub = "close_drawer"
    s = ctx.scene
    handle, pull, joint = drawer_info(s, cab, level)
    lat = np.array([-pull[1], pull[0], 0.0])
    tilt = axis_rot(lat, np.deg2rad(tilt_deg))  # tips the fingertips towards -pull
    ctx.yaw = s.choose_yaw(lat)
    ctx.grip = CLOSE
    rot = target_rot(ctx.yaw, tilt)
    start = handle + 0.035 * pull + [0, 0, 0.005]
    p = s.eef_pos()
    hi = np.array([start[0], start[1], max(p[2], handle[2] + 0.10)]) + 0.04 * pull
    yield from move_rot(ctx, hi, rot, tol=0.03, rot_tol=0.3, max_steps=60)
    yield from move_rot(ctx, start, rot, tol=0.012, rot_tol=0.15, max_steps=40)
    for _ in range(80):
        if s.qpos(joint) > 0.003:
            break
        handle, pull, joint = drawer_info(s, cab, level)
        goal = handle - 0.05 * pull + [0, 0, 0.005]
        yield ctx.servo.action(goal, rot, CLOSE, cap=0.8, rot_cap=1.0)
    p = s.eef_pos()
    yield from move_rot(ctx, p + 0.06 * pull + [0, 0, 0.06], rot, tol=0.02, max_steps=20)


def turn_on_stove(ctx, stove="flat_stove_1", target_q=0.6):
    """Push the knob lever sideways (positive rotation about its vertical hinge)."""
    ctx.sub = "turn_on_stove"
    s = ctx.scene
    m = s.model
    b = m.body_name2id(f"{stove}_button")
    joint = f"{stove}_button"
    if s.qpos(joint) > target_q:
        return  # already on
    axis = s.data.body_xpos[b].copy()
    r = s.data.body_xmat[b].reshape(3, 3)
    gs = [g for g in range(m.ngeom) if m.geom_bodyid[g] == b and
          (m.geom_contype[g] or m.geom_conaffinity[g])]
    bar = max(gs, key=lambda g: s.geom_corners(g)[:, 2].max())  # the knob's ridge bar
    top = s.geom_corners(bar)[:, 2].max()
    xm = s.data.geom_xmat[bar].reshape(3, 3)
    half = s.model.geom_aabb[bar][3:]
    horiz = [k for k in range(3) if abs(xm[2, k]) < 0.5]
    k = max(horiz, key=lambda k: half[k])
    d = xm[:, k].copy()
    d[2] = 0
    d /= np.linalg.norm(d)
    if (s.data.geom_xpos[bar] - axis)[:2] @ d[:2] < 0:  # towards the longer end of the bar
        d = -d
    del r
    t = np.array([-d[1], d[0], 0.0])
    # grasp the ridge bar next to the hinge (fingers across it), then turn the wrist
    g = axis + 0.012 * d
    z = top - 0.015
    yaw0 = s.choose_yaw(t)
    if yaw0 > 0.9:  # leave room to turn the wrist positively (joint 7 goes the other way)
        yaw0 -= np.pi
    p = s.eef_pos()
    hi = max(p[2] - 0.05, top + 0.06)
    yield from move_path(ctx, [[g[0], g[1], hi], [g[0], g[1], z]], yaw=yaw0, grip=OPEN,
                         pass_tol=0.02, tol=0.007, max_steps=100)
    yield from gripper(ctx, CLOSE)
    for _ in range(50):
        q = s.qpos(joint)
        if q > target_q:
            break
        ctx.yaw = min(ctx.yaw + 0.12, yaw0 + 1.2)
        yield ctx.servo.action([g[0], g[1], z], target_rot(ctx.yaw), CLOSE, cap=0.5)
    yield from gripper(ctx, OPEN, n=5)
    p = s.eef_pos()
    yield from move(ctx, [p[0], p[1], p[2] + 0.06], tol=0.02, max_steps=20)


def push_to(ctx, name, target_xy, tol=0.015, budget=200, along=False):
    """Push an object across the table with the closed fingers until its origin is near xy.
    `along`: finger axis along the push instead of across it (the hand's narrow side leads:
    it passes between neighbours), the fingertips nearer the dish's centre."""
    ctx.sub = "push_to"
    s = ctx.scene
    lo, hi = s.bbox(name)
    rad = max(hi[0] - lo[0], hi[1] - lo[1]) / 2
    z = lo[2] + (0.018 if along else 0.009)  # (along: not pressing on the dish's floor)
    target_xy = np.asarray(target_xy, dtype=float)

    def line():
        o = s.pos(name)[:2]
        d = target_xy - o
        n = np.linalg.norm(d)
        return o, d / max(n, 1e-6), n

    steps = 0
    for _attempt in range(3):
        o, d, n = line()
        if n < tol:
            break
        d3 = np.array([d[0], d[1], 0.0])
        # closed fingertips inside the dish against the rim on the target side, then drag it
        inset = rad - (0.05 if along else 0.03)
        start = np.array([o[0], o[1], z]) + inset * d3
        yaw = s.choose_yaw(d3 if along else np.array([-d[1], d[0], 0.0]))
        p = s.eef_pos()
        for a in move_path(ctx, [[start[0], start[1], max(p[2] - 0.05, hi[2] + 0.05)], start],
                           yaw=yaw, grip=CLOSE, pass_tol=0.02, tol=0.008, max_steps=90):
            steps += 1
            yield a
        hist = []
        for _ in range(max(0, min(100, budget - steps))):
            o, d, n = line()
            hist.append(n)
            if n < tol or (len(hist) > 15 and hist[-15] - n < 0.003):
                break  # there, or blocked
            if np.linalg.norm(s.eef_pos()[:2] - o) > rad:  # slipped over the rim: start again
                p = s.eef_pos()
                yield from move(ctx, [p[0], p[1], hi[2] + 0.05], tol=0.02, max_steps=20)
                break
            d3 = np.array([d[0], d[1], 0.0])
            goal = np.array([o[0], o[1], z]) + (rad - 0.03) * d3 + min(n, 0.04) * d3
            steps += 1
            yield ctx.servo.action(goal, target_rot(ctx.yaw), CLOSE, cap=0.7)
        if steps >= budget:
            break
    p = s.eef_pos()
    yield from move(ctx, [p[0], p[1], p[2] + 0.06], tol=0.02, max_steps=20)


# --- mugs and hinged doors (microwave) ----------------------------------------------------------

def mug_parts(scene, name):
    """(rim centre, rim outer radius, handle geoms, rim top z) of a mug: the rim is the geoms
    reaching the top, the handle the other geoms standing out beyond the rim."""
    lo, hi = scene.bbox(name)
    gs = scene.geoms(name)
    cs = {g: scene.geom_corners(g) for g in gs}
    rim = [g for g in gs if cs[g][:, 2].max() > hi[2] - 0.005]
    rp = np.concatenate([cs[g] for g in rim])
    c = (rp.min(0) + rp.max(0)) / 2
    radius = float(np.ptp(rp[:, 0]) + np.ptp(rp[:, 1])) / 4
    handle = [g for g in gs if g not in rim
              and np.linalg.norm((cs[g].mean(0) - c)[:2]) > 0.8 * radius]
    return c, radius, handle, float(hi[2])


def mug_handle_dir(scene, name) -> np.ndarray | None:
    """Horizontal unit vector from a mug's rim centre towards its handle (None: no handle)."""
    c, _, handle, _ = mug_parts(scene, name)
    if not handle:
        return None
    pts = np.concatenate([scene.geom_corners(g) for g in handle])
    d = (pts.mean(0) - c)[:2]
    d = d / np.linalg.norm(d)
    return np.array([d[0], d[1], 0.0])


def mug_handle_grasp(ctx, name):
    """Top-down pinch of the top of a mug's handle at its outer end, fingers across the handle:
    the hand stays behind the mug (it can go into a low cavity, e.g. a microwave, ahead of the
    hand). The hand's bottom clears the rim by ~4 mm."""
    s = ctx.scene
    c, _, handle, rim_top = mug_parts(s, name)
    d = mug_handle_dir(s, name)
    perp = np.array([-d[1], d[0], 0.0])
    pts = np.concatenate([s.geom_corners(g) for g in handle])
    r = (pts[:, :2] - c[:2]) @ d[:2]
    lat = (pts[:, :2] - c[:2]) @ perp[:2]
    top = pts[:, 2].max()
    g = c + (r.max() - 0.007) * d + (lat.min() + lat.max()) / 2 * perp
    g[2] = max(top - 0.005, rim_top - 0.022)
    return g, s.choose_yaw(perp)


def push_into(ctx, name, n, rear_goal, tilt_deg=45.0, max_steps=90):
    """Push `name` along horizontal `n` with the closed fingertips on its rearmost part (a mug's
    handle), gripper tilted so the fingertips lead and the hand trails low behind them (it
    stays out of a cavity the object goes into), until its rearmost point is at `rear_goal`
    along n (or it stops moving)."""
    ctx.sub = "push_into"
    s = ctx.scene
    n = np.array([n[0], n[1], 0.0]) / np.linalg.norm(n[:2])
    lat = np.array([n[1], -n[0], 0.0])
    tilt = axis_rot(lat, np.deg2rad(tilt_deg))  # tips the fingertips towards +n
    ctx.yaw = s.choose_yaw(lat)
    ctx.grip = CLOSE
    rot = target_rot(ctx.yaw, tilt)

    lead = 0.012 * np.sin(np.deg2rad(tilt_deg)) + 0.011 * np.cos(np.deg2rad(tilt_deg))

    def contact():
        """(middle of the rear face of the geoms within 6 mm of the rearmost point, rear)."""
        gs = s.geoms(name)
        cs = {g: s.geom_corners(g) for g in gs}
        back = {g: float((cs[g] @ n).min()) for g in gs}
        rear = min(back.values())
        pts = np.concatenate([cs[g] for g in gs if back[g] < rear + 0.006])
        p = (pts.min(0) + pts.max(0)) / 2
        p = p + (rear - p @ n) * n
        return p, rear

    p, rear = contact()
    if rear >= rear_goal:
        return
    start = p - (lead + 0.03) * n
    e = s.eef_pos()
    above = np.array([start[0], start[1], max(e[2], p[2] + 0.08)])
    yield from move_rot(ctx, above, rot, tol=0.03, rot_tol=0.3, max_steps=50)
    yield from move_rot(ctx, start, rot, tol=0.01, rot_tol=0.12, max_steps=40)
    hist = []
    for _ in range(max_steps):
        p, rear = contact()
        hist.append(rear)
        if rear >= rear_goal or (len(hist) > 20 and hist[-20] - rear > -0.002):
            break
        goal = p + (min(rear_goal - rear + 0.01, 0.03) - lead) * n
        yield ctx.servo.action(goal, rot, CLOSE, cap=0.5, rot_cap=1.0)
    e = s.eef_pos()
    yield from move_rot(ctx, e - 0.06 * n + [0, 0, 0.05], rot, tol=0.02, max_steps=25)


def door_frame(scene, joint: str):
    """Live geometry of a hinged door (vertical hinge, closed at q = 0, closing = q up):
    (hinge point, unit u from the hinge along the door, unit t the way its free end moves
    when closing, door length, offset of its outer (-t) face along t, top z, offset of its
    inner (+t) face)."""
    m = scene.model
    j = m.joint_name2id(joint)
    body = m.jnt_bodyid[j]
    gs = [g for g in range(m.ngeom) if m.geom_bodyid[g] == body and m.geom_type[g] == 6
          and (m.geom_contype[g] or m.geom_conaffinity[g])]
    g = max(gs, key=lambda g: float(np.prod(m.geom_size[g])))
    cs = scene.geom_corners(g)
    hinge = scene.data.xanchor[j].copy()
    axis = scene.data.xaxis[j].copy()
    # along the door: the box's longest horizontal axis, pointing away from the hinge
    xm = scene.data.geom_xmat[g].reshape(3, 3)
    half = m.geom_aabb[g][3:]
    k = max((k for k in range(3) if abs(xm[2, k]) < 0.5), key=lambda k: half[k])
    u = xm[:, k].copy()
    u[2] = 0
    u /= np.linalg.norm(u)
    if (cs.mean(0) - hinge) @ u < 0:
        u = -u
    t = np.cross(axis, u)
    t[2] = 0
    t /= np.linalg.norm(t)
    rel = cs - hinge
    return (hinge, u, t, float((rel @ u).max()), float((rel @ t).min()), float(cs[:, 2].max()),
            float((rel @ t).max()))


def close_door(ctx, joint: str, closed_q: float = -0.002):
    """Swing a hinged door (the microwave's) shut."""
    ctx.sub = "close_door"
    yield from swing_door(ctx, joint, closed_q, frac=0.65)


def swing_door(ctx, joint: str, target_q: float, frac: float = 0.65, max_steps=140):
    """Swing a hinged door to `target_q` (shut when above the current q, wider open when
    below): closed fingertips just below its top edge (the hand stays above the door) on the
    face that leads away from the push, at `frac` of its length from the hinge, pushed along
    the arc; the finger axis turns with the door."""
    s = ctx.scene
    q0 = s.qpos(joint)
    sign = 1.0 if target_q > q0 else -1.0  # +1: closing, the free end moves along +t

    def reached():
        return (s.qpos(joint) - target_q) * sign > 0

    if reached():
        return
    hinge, u, t, length, _, top, _ = door_frame(s, joint)
    ang0 = float(np.arctan2(u[1], u[0]))
    yaw0 = s.choose_yaw(u)
    ctx.grip = CLOSE
    z = top - 0.012  # grip site; fingertips ~1.2 cm lower, hand bottom ~2.6 cm higher

    def point(back):
        """On the pushed face at `back` outside it; the push direction."""
        h, uu, tt, _, f_lo, _, f_hi = door_frame(s, joint)
        d = sign * tt
        f = f_lo if sign > 0 else f_hi
        p = h + frac * length * uu + f * tt - back * d
        return np.array([p[0], p[1], z]), uu, d

    def yaw_now(uu):
        return yaw0 + ((float(np.arctan2(uu[1], uu[0])) - ang0 + np.pi) % (2 * np.pi) - np.pi)

    back = 0.013  # fingers' half thickness and a little
    p, _, _ = point(back + 0.04)
    e = s.eef_pos()
    high = max(e[2], top + 0.07)
    if e[2] < high - 0.02:
        yield from move(ctx, [e[0], e[1], high], grip=CLOSE, tol=0.02, max_steps=30)
    yield from move(ctx, [p[0], p[1], high], yaw=yaw0, grip=CLOSE, tol=0.03, rot_tol=0.2,
                    max_steps=60)
    yield from move(ctx, p, tol=0.01, max_steps=40)
    for _ in range(max_steps):
        if reached():
            break
        p, uu, d = point(back)
        ctx.yaw = yaw_now(uu)
        goal = p + 0.04 * d
        yield ctx.servo.action(goal, target_rot(ctx.yaw), CLOSE, cap=0.6)
    _, _, d = point(0.0)
    e = s.eef_pos()
    yield from move(ctx, e - 0.05 * d + [0, 0, 0.06], tol=0.02, max_steps=20)
