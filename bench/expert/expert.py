"""Goal -> plan: map a LIBERO BDDL goal onto a sequence of skills, run it step by step."""

from __future__ import annotations

import numpy as np

from bench.expert import skills
from bench.expert.control import Servo
from bench.expert.geometry import Scene

EXPERT_VERSION = "0.2"


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
        self.stage = ""

    def reset(self) -> None:
        """Call after env.reset(): re-plans from the current state."""
        self.scene = Scene(self.r)
        self.servo = Servo(self.scene)
        self.yaw = 0.0
        self.grip = -1.0
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
            if drawer is not None:
                cab, level = drawer
                _, _, joint = skills.drawer_info(self.scene, cab, level)
                if self.scene.qpos(joint) > -0.12:
                    yield from skills.open_drawer(self, cab, level)
            yield from self._pick_place(pred[1], pred[2], kind)
        elif kind == "open" and drawer is not None:
            yield from skills.open_drawer(self, *drawer)
        elif kind == "close" and drawer is not None:
            yield from skills.close_drawer(self, *drawer)
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
        if kind == "in":
            parent = self._site_parent(target)
            top = s.bbox(parent)[1][2] if parent else sp[2] + sz[2]
            return sp[:2], sp[2] - sz[2] + 0.03, top
        return sp[:2], sp[2] + sz[2] + 0.012, sp[2] + sz[2]

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

    def _pick_place(self, obj, target, kind):
        s = self.scene
        xy, release_z, top = self._target_geometry(obj, target, kind)
        carry_bottom = self._carry_bottom(obj, xy, release_z, top)
        lo, _ = s.bbox(obj)
        # grip-site height when carrying: grasp point sits ~(grasp z - bottom) above the bottom
        if skills.is_bowl_like(obj):
            g, _ = skills.bowl_grasp(self, obj)
        else:
            g, _ = skills.body_grasp(self, obj)
        carry_z = carry_bottom + (g[2] - lo[2])
        ok = yield from skills.pick(self, obj, carry_z)
        if not ok:
            return
        yield from skills.place(self, obj, xy, release_z, carry_z, retreat_z=top + 0.07)


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
