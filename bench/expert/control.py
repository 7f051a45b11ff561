"""Pose servo: target grip-site pose -> smooth, capped 7-D OSC_POSE action."""

from __future__ import annotations

import numpy as np

from bench.expert.geometry import R_DOWN, Scene, mat2axisangle, rotz

POS_SCALE = 0.05  # metres per unit action
ROT_SCALE = 0.5  # radians per unit action


def target_rot(yaw: float, tilt: np.ndarray | None = None) -> np.ndarray:
    r = rotz(yaw) @ R_DOWN
    return r if tilt is None else tilt @ r


class Servo:
    """P(+I) servo with norm caps and a per-step rate limit on the action (smooth, no jitter)."""

    def __init__(self, scene: Scene, kp: float = 2.0, kr: float = 1.2, ki: float = 0.15,
                 rate: float = 0.25):
        self.scene = scene
        self.kp, self.kr, self.ki, self.rate = kp, kr, ki, rate
        self.prev = np.zeros(6)
        self.integ = np.zeros(3)
        self._last_target = None

    def reset(self) -> None:
        self.prev[:] = 0
        self.integ[:] = 0
        self._last_target = None

    def errors(self, pos: np.ndarray, rot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ep = np.asarray(pos) - self.scene.eef_pos()
        er = mat2axisangle(rot @ self.scene.eef_mat().T)
        return ep, er

    def action(self, pos, rot, grip: float, cap: float = 1.0, rot_cap: float = 0.8) -> np.ndarray:
        ep, er = self.errors(pos, rot)
        if self._last_target is None or np.linalg.norm(self._last_target - pos) > 0.02:
            self.integ[:] = 0
        self._last_target = np.array(pos, dtype=float)
        if np.linalg.norm(ep) < 0.03:
            self.integ = np.clip(self.integ + ep / POS_SCALE, -3, 3)
        else:
            self.integ[:] = 0
        a_pos = ep / POS_SCALE * self.kp + self.ki * self.integ
        n = np.linalg.norm(a_pos)
        if n > cap:
            a_pos *= cap / n
        a_rot = er / ROT_SCALE * self.kr
        n = np.linalg.norm(a_rot)
        if n > rot_cap:
            a_rot *= rot_cap / n
        a = np.concatenate([a_pos, a_rot])
        a = self.prev + np.clip(a - self.prev, -self.rate, self.rate)
        a = np.clip(a, -1, 1)
        self.prev = a
        return np.concatenate([a, [1.0 if grip > 0 else -1.0]])
