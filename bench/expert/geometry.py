"""Privileged scene geometry for the scripted expert: poses, world boxes, sites, joints."""

from __future__ import annotations

import numpy as np

# Grip-site orientation (columns = site axes in world) when pointing down at yaw 0:
# site x (finger axis) = world y, site y = world x, site z = world -z.
R_DOWN = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])


def rotz(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def mat2axisangle(r: np.ndarray) -> np.ndarray:
    """Rotation matrix -> axis-angle vector (angle in [0, pi])."""
    cos = np.clip((np.trace(r) - 1) / 2, -1.0, 1.0)
    ang = np.arccos(cos)
    if ang < 1e-6:
        return np.zeros(3)
    v = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]])
    if np.pi - ang < 1e-3:  # near pi: take the axis from the symmetric part
        w, vecs = np.linalg.eigh((r + r.T) / 2)
        axis = vecs[:, np.argmax(w)]
        if axis @ v < 0:
            axis = -axis
        return axis * ang
    return v / (2 * np.sin(ang)) * ang


def yaw_for_finger_axis(u: np.ndarray) -> float:
    """Yaw (wrapped to (-pi/2, pi/2]) that makes the fingers separate along horizontal u."""
    yaw = np.arctan2(-u[0], u[1])
    return wrap_half(yaw)


def wrap_half(yaw: float) -> float:
    """The gripper is symmetric: yaw and yaw +- pi are the same grasp. Keep q7 centred."""
    yaw = (yaw + np.pi / 2) % np.pi - np.pi / 2
    return float(yaw)


class Scene:
    """Read-only helpers over the robosuite env `r` (LiberoEnv.env.env) and its MjSim."""

    def __init__(self, r):
        self.r = r
        self.sim = r.sim
        self.model = self.sim.model
        self.data = self.sim.data
        self.eef_site = r.robots[0].eef_site_id
        self._geoms_cache: dict[str, list[int]] = {}

    # --- robot -----------------------------------------------------------------------------
    def eef_pos(self) -> np.ndarray:
        return self.data.site_xpos[self.eef_site].copy()

    def eef_mat(self) -> np.ndarray:
        return self.data.site_xmat[self.eef_site].reshape(3, 3).copy()

    def gripper_qpos(self) -> np.ndarray:
        r = self.r
        return self.data.qpos[r.robots[0]._ref_gripper_joint_pos_indexes].copy()

    def eef_yaw(self) -> float:
        """Yaw of the grip site (0 when the fingers separate along world y)."""
        r = self.eef_mat()
        return float(np.arctan2(-r[0, 0], r[1, 0]))

    def q7(self) -> float:
        return float(self.data.qpos[self.r.robots[0]._ref_joint_pos_indexes[6]])

    def choose_yaw(self, u: np.ndarray) -> float:
        """Yaw making the fingers separate along u; of yaw and yaw +- pi (the same grasp), the
        one that keeps joint 7 furthest from its limits (predicted q7 = q7 - delta yaw)."""
        y0 = float(np.arctan2(-u[0], u[1]))
        now, q7 = self.eef_yaw(), self.q7()
        best = None
        for k in (-2, -1, 0, 1, 2):
            y = y0 + k * np.pi
            d = (y - now + np.pi) % (2 * np.pi) - np.pi  # the servo turns the short way
            if abs(y - now - d) > 1e-6:
                continue
            pred = q7 - 1.3 * d
            if best is None or abs(pred - 0.3) < best[0]:
                best = (abs(pred - 0.3), y)
        return float(best[1])

    def finger_gap(self) -> float:
        q = self.gripper_qpos()
        return float(q[0] - q[1])

    # --- bodies ----------------------------------------------------------------------------
    def body_id(self, name: str) -> int:
        if name in self.r.obj_body_id:
            return self.r.obj_body_id[name]
        return self.model.body_name2id(name)

    def pos(self, name: str) -> np.ndarray:
        return self.data.body_xpos[self.body_id(name)].copy()

    def mat(self, name: str) -> np.ndarray:
        return self.data.body_xmat[self.body_id(name)].reshape(3, 3).copy()

    def _subtree(self, root: int) -> list[int]:
        parent = self.model.body_parentid
        out = [root]
        for b in range(root + 1, self.model.nbody):
            p = parent[b]
            if p in out:
                out.append(b)
        return out

    def geoms(self, name: str, collision_only: bool = True) -> list[int]:
        key = f"{name}|{collision_only}"
        if key not in self._geoms_cache:
            bodies = set(self._subtree(self.body_id(name)))
            gs = [g for g in range(self.model.ngeom) if self.model.geom_bodyid[g] in bodies]
            if collision_only:
                col = [g for g in gs if self.model.geom_contype[g] or self.model.geom_conaffinity[g]]
                gs = col or gs
            self._geoms_cache[key] = gs
        return self._geoms_cache[key]

    def geom_corners(self, g: int) -> np.ndarray:
        aabb = self.model.geom_aabb[g]
        c, h = aabb[:3], aabb[3:]
        signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
        local = c + signs * h
        xm = self.data.geom_xmat[g].reshape(3, 3)
        return self.data.geom_xpos[g] + local @ xm.T

    def points(self, name: str, geoms: list[int] | None = None) -> np.ndarray:
        gs = self.geoms(name) if geoms is None else geoms
        return np.concatenate([self.geom_corners(g) for g in gs])

    def bbox(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        p = self.points(name)
        return p.min(0), p.max(0)

    def footprint_axes(self, name: str) -> tuple[np.ndarray, float, float]:
        """Horizontal principal axes of an object: (short-axis unit vector, short, long extent)."""
        p = self.points(name)[:, :2]
        # box geoms give corners; use the object's own orientation candidates + PCA
        best = None
        for ang in np.linspace(0, np.pi, 36, endpoint=False):
            u = np.array([np.cos(ang), np.sin(ang)])
            v = np.array([-u[1], u[0]])
            wu = np.ptp(p @ u)
            wv = np.ptp(p @ v)
            if best is None or wu * wv < best[0] - 1e-9:
                best = (wu * wv, u, wu, wv)
        _, u, wu, wv = best
        if wu > wv:
            u, wu, wv = np.array([-u[1], u[0]]), wv, wu
        return np.array([u[0], u[1], 0.0]), float(wu), float(wv)

    # --- sites and joints ------------------------------------------------------------------
    def site_id(self, name: str) -> int:
        return self.model.site_name2id(name)

    def site_pos(self, name: str) -> np.ndarray:
        return self.data.site_xpos[self.site_id(name)].copy()

    def site_mat(self, name: str) -> np.ndarray:
        return self.data.site_xmat[self.site_id(name)].reshape(3, 3).copy()

    def site_size(self, name: str) -> np.ndarray:
        return self.model.site_size[self.site_id(name)].copy()

    def qpos(self, joint: str) -> float:
        return float(self.data.qpos[self.model.get_joint_qpos_addr(joint)])

    def movable_objects(self) -> list[str]:
        return list(self.r.objects_dict)

    def all_objects(self) -> list[str]:
        return list(self.r.objects_dict) + list(self.r.fixtures_dict)
