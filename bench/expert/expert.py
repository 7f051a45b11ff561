"""Goal -> plan: map a LIBERO BDDL goal onto a sequence of skills, run it step by step."""

from __future__ import annotations

import numpy as np

from bench.expert import skills
from bench.expert.control import Servo
from bench.expert.geometry import Scene

EXPERT_VERSION = "0.4"


class Expert:
    """Scripted expert with privileged state. `act()` returns the next (7,) action."""

    def __init__(self, env):
        self.env = env  # bench.suites.libero.LiberoEnv
        self.r = env.env.env
        self.scene = Scene(self.r)
        self.servo = Servo(self.scene)
        self.yaw = 0.0
        self.grip = -1.0
        self._plan = None
        self._slots: dict[str, dict[str, np.ndarray]] = {}
        self.stage = ""
        self.sub = ""  # current skill (for logs)

    def reset(self) -> None:
        """Call after env.reset(): re-plans from the current state."""
        self.scene = Scene(self.r)
        self.servo = Servo(self.scene)
        self.yaw = 0.0
        self.grip = -1.0
        self._slots = {}
        self._plan = self._run_plan()

    def goal(self) -> list[list[str]]:
        return [[t.lower() for t in p] for p in self.r.parsed_problem["goal_state"]]

    def act(self) -> np.ndarray:
        if self._plan is None:
            self.reset()
        try:
            return next(self._plan)
        except StopIteration:
            self._plan = self._idle()
            return next(self._plan)

    def _idle(self):
        p = self.scene.eef_pos()
        while True:
            yield from skills.hold(self, 1, pos=p)

    # --- planning ----------------------------------------------------------------------------
    def _run_plan(self):
        goal = self.goal()
        goal = self._order(goal)
        for pred in goal:
            self.stage = " ".join(pred)
            yield from self._achieve(pred)

    def _order(self, goal):
        # Stove on before putting things on it; put things in drawers/microwave before closing.
        def key(p):
            if p[0] == "turnon":
                return 0
            if p[0] == "open":
                return 0.5
            if p[0] in ("close",):
                return 2
            return 1
        return sorted(goal, key=key)

    def _achieve(self, pred):
        kind = pred[0]
        drawer = self._drawer(pred[-1])
        if kind in ("on", "in") and len(pred) == 3 and pred[1] in self.r.objects_dict:
            if "plate" in pred[1] and pred[2] in self.r.object_sites_dict and drawer is None:
                xy = self.scene.site_pos(pred[2])[:2]
                yield from skills.push_to(self, pred[1], xy)
                return
            mw = self._microwave(pred[2])
            if mw is not None and "mug" in pred[1] and kind == "in":
                yield from self._put_in_microwave(pred[1], mw, pred[2])
                return
            if drawer is not None:
                cab, level = drawer
                _, _, joint = skills.drawer_info(self.scene, cab, level)
                if self.scene.qpos(joint) > -0.12:
                    yield from self._clear_drawer_path(pred[1], cab, level)
                    yield from skills.open_drawer(self, cab, level)
            yield from self._pick_place(pred[1], pred[2], kind, hand=drawer is not None)
        elif kind == "open" and drawer is not None:
            yield from skills.open_drawer(self, *drawer)
        elif kind == "close" and drawer is not None:
            yield from skills.close_drawer(self, *drawer)
        elif kind == "close" and (mw := self._microwave(pred[1])) is not None:
            yield from skills.close_door(self, f"{mw}_microjoint")
        elif kind == "turnon":
            yield from skills.turn_on_stove(self, pred[1])
        else:
            raise NotImplementedError(f"no skill for goal {pred}")

    def _drawer(self, region):
        """(cabinet, level) when `region` is a drawer region like `wooden_cabinet_1_top_region`."""
        names = set(self.scene.model.body_names)
        for cab in self.r.fixtures_dict:
            for level in ("top", "middle", "bottom"):
                if region == f"{cab}_{level}_region" and f"{cab}_cabinet_{level}" in names:
                    return cab, level
        return None

    def _microwave(self, name):
        """The microwave fixture when `name` is it or one of its sites (has a door joint)."""
        names = set(self.scene.model.joint_names)
        for fx in self.r.fixtures_dict:
            if (name == fx or name.startswith(fx + "_")) and f"{fx}_microjoint" in names:
                return fx
        return None

    def _microwave_cavity(self, mw, site):
        """(inward unit n, front plane offset along n, floor z, ceiling z, lateral unit side,
        free lateral interval (lo, hi) along side) of a microwave's cavity, from its door hinge
        and its box geoms around the heating-region site."""
        s = self.scene
        m = s.model
        joint = f"{mw}_microjoint"
        hinge, u = skills.door_frame(s, joint)[:2]
        q = s.qpos(joint)
        c, sn = np.cos(-q), np.sin(-q)
        # the door's direction when shut, and the way its free end moves then (inwards)
        side = np.array([c * u[0] - sn * u[1], sn * u[0] + c * u[1], 0.0])
        n = np.array([-side[1], side[0], 0.0])
        front = float(hinge @ n)
        sp = s.site_pos(site)
        door = m.jnt_bodyid[m.joint_name2id(joint)]
        gs = [g for g in s.geoms(mw) if m.geom_type[g] == 6 and m.geom_bodyid[g] != door]
        floor, ceil = -np.inf, np.inf
        for g in gs:
            cs = s.geom_corners(g)
            if cs[:, 2].max() < sp[2] and _box_xy_contains(cs, sp):
                floor = max(floor, float(cs[:, 2].max()))
            elif cs[:, 2].min() > sp[2] and _box_xy_contains(cs, sp):
                ceil = min(ceil, float(cs[:, 2].min()))
        mid = np.array([sp[0], sp[1], (floor + ceil) / 2])
        ks = np.linspace(-0.2, 0.2, 81)
        free = [all(float(skills._box_distance(s, g, (mid + k * side)[None])[0]) > 0.002
                    for g in gs) for k in ks]
        i0 = int(np.argmin(np.abs(ks)))
        lo_i, hi_i = i0, i0
        while lo_i > 0 and free[lo_i - 1]:
            lo_i -= 1
        while hi_i < len(ks) - 1 and free[hi_i + 1]:
            hi_i += 1
        free_lat = (float(mid @ side + ks[lo_i]), float(mid @ side + ks[hi_i]))
        return n, front, floor, ceil, side, free_lat

    def _put_in_microwave(self, obj, mw, site):
        """A mug into the microwave through its front opening (too low for a top-down hand
        over the mug): pinch the handle from above when it points out of the opening, carry
        the mug in low until the hand nears the front, set it down, then push it fully in
        by the handle with tilted fingertips (the door must shut in front of it)."""
        s = self.scene
        n, front, floor, ceil, side, (l_lo, l_hi) = self._microwave_cavity(mw, site)
        d = skills.mug_handle_dir(s, obj)
        if d is None or d @ n > -0.7:
            yield from self._pick_place(obj, site, "in")
            return
        # a door open less than ~95 degrees reaches into the hand's way: swing it wider first
        joint = f"{mw}_microjoint"
        if s.qpos(joint) > -1.65:
            self.sub = "open_door"
            yield from skills.swing_door(self, joint, -1.85, frac=0.8)
        c, radius, _, _ = skills.mug_parts(s, obj)
        lo, hi = s.bbox(obj)
        g, _ = skills.mug_handle_grasp(self, obj)
        o = s.pos(obj)
        carry_bottom = floor + 0.016
        carry_z = carry_bottom + (g[2] - lo[2])
        ok = yield from skills.pick(self, obj, carry_z, grasp=skills.mug_handle_grasp)
        if not ok:
            return
        # where the origin goes: the hand's front (grip + 3.2 cm + margin) stays out of the
        # opening; laterally the rim keeps off the side walls and inside the site
        grip_n = front - 0.046
        off = s.pos(obj) - s.eef_pos()
        o_n = grip_n + off @ n
        c_off = (c - o) @ side
        sp, sz = s.site_pos(site), s.site_size(site)
        lat = float(np.clip(s.pos(obj) @ side + c_off, l_lo + radius + 0.015,
                            l_hi - radius - 0.015)) - c_off
        lat = float(np.clip(lat, sp @ side - sz[0] + 0.03, sp @ side + sz[0] - 0.03))
        xy = o_n * n[:2] + lat * side[:2]
        yield from skills.place(self, obj, xy, floor + 0.004, carry_z,
                                retreat_z=s.bbox(mw)[1][2] + 0.05)
        # push it in until its rearmost point (the handle) is past the door's plane
        yield from skills.push_into(self, obj, n, front + 0.014)

    def _clear_drawer_path(self, obj: str, cab: str, level: str, margin: float = 0.01):
        """Drag a bowl out from under the space the drawer will sweep when opened (an open
        drawer over a bowl leaves no room for the hand): the shortest drag after which some
        rim grasp keeps the whole hand clear of the open drawer and the bowl clear of others,
        and along which the bowl and the dragging hand hit nothing."""
        s = self.scene
        m = s.model
        if not skills.is_bowl_like(obj):
            return
        _, pull, joint = skills.drawer_info(s, cab, level)
        b = m.body_name2id(f"{cab}_cabinet_{level}")
        gs = [g for g in range(m.ngeom) if m.geom_bodyid[g] == b and m.geom_type[g] == 6]
        dpts = np.concatenate([s.geom_corners(g) for g in gs])
        lat = np.array([-pull[1], pull[0], 0.0])
        opts = s.points(obj)
        if opts[:, 2].max() > dpts[:, 2].min():
            return  # not below the drawer
        disp = 0.16 + s.qpos(joint)
        p_lo, p_hi = float((dpts @ pull).min()) + disp, float((dpts @ pull).max()) + disp
        l_lo, l_hi = float((dpts @ lat).min()), float((dpts @ lat).max())
        lo, hi = s.bbox(obj)
        c = (lo + hi) / 2
        rad = (hi[0] - lo[0] + hi[1] - lo[1]) / 4 - skills.BOWL_INSET
        angs = np.linspace(-np.pi, np.pi, 24, endpoint=False)
        us = np.stack([np.cos(angs), np.sin(angs), 0 * angs], 1)
        a_ = np.linspace(-0.1, 0.1, 9)

        def hand_clear(cc: np.ndarray) -> bool:
            for u in us:
                v = np.array([-u[1], u[0], 0.0])
                g = cc + rad * u
                pts = (g + a_[:, None, None] * u + np.array([-0.035, 0.035])[None, :, None] * v)
                pts = pts.reshape(-1, 3)
                pp, ll = pts @ pull, pts @ lat
                inside = ((pp > p_lo - margin) & (pp < p_hi + margin)
                          & (ll > l_lo - margin) & (ll < l_hi + margin))
                if not inside.any():
                    return True
            return False

        if hand_clear(c):
            return
        others = {obj, cab}
        cands = []
        for dist in np.arange(0.02, 0.16, 0.01):
            for ang in np.linspace(-np.pi, np.pi, 16, endpoint=False):
                cands.append(dist * np.array([np.cos(ang), np.sin(ang), 0.0]))

        def path_clear(sh: np.ndarray) -> bool:
            # push_to(along=True) drags with the closed fingertips inside the bowl, finger
            # axis along the drag: the hand (~21 cm long, 6.4 cm wide, 3.8-13.6 cm above the
            # fingertips) is centred 0-4 cm ahead of the bowl's centre (checked with the
            # fingertips 9 mm lower than push_to holds them: conservative)
            d = sh / np.linalg.norm(sh)
            v = np.array([-d[1], d[0], 0.0])
            tip = lo[2] + 0.009
            hand = np.array([a * d + b * v + [0, 0, tip + dz - c[2]]
                             for a in np.linspace(-0.105, 0.105, 8) for b in (-0.032, 0.032)
                             for dz in (0.04, 0.09, 0.135)])
            for t in np.linspace(0.2, 1.0, 5):
                if skills.clearance(s, opts + t * sh + [0, 0, 0.003], others) < 0.008:
                    return False
                for ahead in (0.004, 0.044):
                    if skills.clearance(s, hand + c + t * sh + ahead * d, {obj}) < 0.012:
                        return False
            return True

        for sh in cands:
            if (hand_clear(c + sh) and skills.clearance(s, opts + sh, others) > 0.008
                    and path_clear(sh * (1 + 0.012 / np.linalg.norm(sh)))):
                break
        else:
            return
        sh = sh * (1 + 0.012 / np.linalg.norm(sh))
        yield from skills.push_to(self, obj, s.pos(obj)[:2] + sh[:2], tol=0.012, along=True)

    def _drawer_floor(self, cab, level):
        """(xy centre, top z) of a drawer's floor board (its widest, flattest box geom)."""
        s = self.scene
        m = s.model
        b = m.body_name2id(f"{cab}_cabinet_{level}")
        gs = [g for g in range(m.ngeom) if m.geom_bodyid[g] == b and m.geom_type[g] == 6
              and (m.geom_contype[g] or m.geom_conaffinity[g])]
        g = max(gs, key=lambda g: np.prod(np.sort(m.geom_size[g])[1:]) / np.min(m.geom_size[g]))
        cs = s.geom_corners(g)
        centre, top = cs.mean(0), cs[:, 2].max()
        # slide the target towards the open side, out from under whatever is above the floor
        _, pull, _ = skills.drawer_info(s, cab, level)
        ext = np.ptp(cs @ pull)
        others = [g2 for g2 in s.geoms(cab) if m.geom_bodyid[g2] != b]
        free = []
        for t in np.linspace(-ext / 2, ext / 2, 21):
            pts = np.array([centre + t * pull + [0, 0, dz] for dz in (0.03, 0.06, 0.09)])
            pts[:, 2] = top + np.array([0.03, 0.06, 0.09])
            if min(float(skills._box_distance(s, g2, pts).min()) for g2 in others) > 0.005:
                free.append(t)
        if free:
            t = (min(free) + max(free)) / 2 + (0.012 if min(free) > -ext / 2 else 0.0)
            centre = centre + t * pull
        return centre[:2], top

    def _target_geometry(self, obj, target, kind):
        """(target xy, release height of the held object's bottom, top of the target)."""
        s = self.scene
        if target in self.r.objects_dict or target in self.r.fixtures_dict:
            lo, hi = s.bbox(target)
            xy = s.pos(target)[:2]
            return xy, hi[2] + 0.01, hi[2]
        drawer = self._drawer(target)
        if drawer is not None:
            xy, floor = self._drawer_floor(*drawer)
            _, hi = s.bbox(drawer[0])
            return xy, floor + 0.012, hi[2]
        sp, sz = s.site_pos(target), s.site_size(target)
        slot = self._slot(obj, target)
        if slot is not None:
            sp = np.array([slot[0], slot[1], sp[2]])
        if kind == "in":
            parent = self._site_parent(target)
            top = s.bbox(parent)[1][2] if parent else sp[2] + sz[2]
            return sp[:2], sp[2] - sz[2] + 0.03, top
        return sp[:2], sp[2] + sz[2] + 0.012, sp[2] + sz[2]

    def _slot(self, obj: str, site: str, sep: float = 0.045):
        """Target xy for `obj` when several goal objects go `on` the same site (two moka pots
        on the stove): spots +-sep apart along the site's longer side; the first object placed
        gets the spot farther from where the objects start (no carrying over it). Containers
        (`in` a basket) keep their centre: objects dropped there settle side by side."""
        preds = [p for p in self.goal() if p[0] == "on" and len(p) == 3
                 and p[2] == site and p[1] in self.r.objects_dict]
        if len(preds) < 2 or site not in self.r.object_sites_dict:
            return None
        s = self.scene
        sp, sz, sm = s.site_pos(site), s.site_size(site), s.site_mat(site)
        axis = sm[:, 0] if sz[0] >= sz[1] else sm[:, 1]
        axis = np.array([axis[0], axis[1], 0.0]) / np.linalg.norm(axis[:2])
        spots = [sp + k * sep * axis for k in np.linspace(-1, 1, len(preds))]
        if self._slots.get(site) is None:
            mean = np.mean([s.pos(p[1]) for p in preds], axis=0)
            spots.sort(key=lambda q: -np.linalg.norm((q - mean)[:2]))
            self._slots[site] = {p[1]: q[:2] for p, q in zip(preds, spots, strict=True)}
        return self._slots[site].get(obj)

    def _site_parent(self, site):
        for name in self.scene.all_objects():
            if site.startswith(name + "_"):
                return name
        return None

    def _carry_bottom(self, obj, target_xy, release_z, target_top):
        """Lowest safe height for the held object's bottom along the straight carry path."""
        s = self.scene
        a = s.pos(obj)[:2]
        b = np.asarray(target_xy)
        z = max(release_z, target_top) + 0.03
        for name in s.all_objects():
            if name == obj:
                continue
            lo, hi = s.bbox(name)
            # distance from the object's box to the carry segment, in xy
            ts = np.linspace(0, 1, 20)[:, None]
            seg = a + ts * (b - a)
            d = np.maximum(np.maximum(lo[:2] - seg, seg - hi[:2]), 0)
            if np.linalg.norm(d, axis=1).min() < 0.06 and hi[2] - lo[2] < 0.35:
                z = max(z, hi[2] + 0.03)
        return z

    def _blocker(self, obj: str) -> str | None:
        """A movable object standing where the hand must go for the top-down grasp of a body
        object `obj` (a tall carton beside a flat box), or None."""
        s = self.scene
        if skills.is_bowl_like(obj) or any(k in obj for k in skills.HANDLED):
            return None
        lo, hi = s.bbox(obj)
        if hi[2] - lo[2] > 0.04:  # only flat boxes are grasped low enough to be blocked
            return None
        g, yaw = skills.body_grasp(self, obj)
        pts = skills.hand_points(g, skills.finger_axis(yaw))
        pts = pts[pts[:, 2] < g[2] + 0.15]  # the hand itself, not the descent above it
        best = None
        for name in s.movable_objects():
            if name == obj:
                continue
            d = skills.clearance(s, pts, {n for n in s.all_objects() if n != name})
            if d < 0.001 and (best is None or d < best[0]):
                best = (d, name)
        return None if best is None else best[1]

    def _relocate(self, name: str, away_from: str, keep_clear: list[str]):
        """Pick `name` and set it down nearby, >= 15 cm from `away_from` and clear of others
        (and of the `keep_clear` targets)."""
        s = self.scene
        lo, hi = s.bbox(name)
        p0, a = s.pos(name), s.pos(away_from)
        pts = s.points(name)
        best = None
        for r in np.arange(0.08, 0.26, 0.03):
            for ang in np.linspace(-np.pi, np.pi, 16, endpoint=False):
                sh = r * np.array([np.cos(ang), np.sin(ang), 0.0])
                q = p0 + sh
                if np.linalg.norm((q - a)[:2]) < 0.15 or q[0] > 0.2:
                    continue
                # (lifted 4 cm: the table under it does not count)
                if skills.clearance(s, pts + sh + [0, 0, 0.04], {name}) < 0.03:
                    continue
                if any(np.linalg.norm((q - s.pos(k))[:2]) < 0.15 for k in keep_clear):
                    continue
                best = q
                break
            if best is not None:
                break
        if best is None:
            return
        g, _ = skills.object_grasp(self, name)
        carry_z = g[2] + 0.04
        ok = yield from skills.pick(self, name, carry_z)
        if ok:
            yield from skills.place(self, name, best[:2], lo[2] + 0.008, carry_z,
                                    retreat_z=hi[2] + 0.05)

    def _pick_place(self, obj, target, kind, hand: bool = False):
        s = self.scene
        blocker = self._blocker(obj)
        if blocker is not None:
            keep = [p[2] for p in self.goal() if len(p) == 3 and p[2] in s.all_objects()]
            keep += [self._site_parent(p[2]) for p in self.goal()
                     if len(p) == 3 and self._site_parent(p[2])]
            keep += [p[1] for p in self.goal() if len(p) == 3 and p[1] != obj]
            yield from self._relocate(blocker, obj, [k for k in keep if k])
        xy, release_z, top = self._target_geometry(obj, target, kind)
        carry_bottom = self._carry_bottom(obj, xy, release_z, top)
        lo, _ = s.bbox(obj)
        # grip-site height when carrying: grasp point sits ~(grasp z - bottom) above the bottom
        g, _ = skills.object_grasp(self, obj, hand=hand)
        carry_z = carry_bottom + (g[2] - lo[2])
        ok = yield from skills.pick(self, obj, carry_z, hand=hand)
        if not ok:
            return
        yield from skills.place(self, obj, xy, release_z, carry_z, retreat_z=top + 0.07)


def _box_xy_contains(corners: np.ndarray, p: np.ndarray) -> bool:
    lo, hi = corners.min(0), corners.max(0)
    return bool(lo[0] <= p[0] <= hi[0] and lo[1] <= p[1] <= hi[1])


def run_episode(env, init_state_idx: int, seed: int, max_steps: int | None = None,
                on_step=None) -> tuple[bool, list[np.ndarray]]:
    """Reset `env` and run the expert until success or the step budget. Returns (success, actions).

    `on_step(t, env)` is called before each action (e.g. to record proprio and images).
    """
    env.reset(init_state_idx, seed)
    expert = Expert(env)
    expert.reset()
    max_steps = max_steps or env.max_steps
    actions = []
    for t in range(max_steps):
        a = expert.act()
        if on_step is not None:
            on_step(t, env)
        actions.append(a)
        if env.step(a):
            return True, actions
    return False, actions
