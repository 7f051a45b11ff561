"""`fake`: a tiny deterministic env for unit tests (no simulator).

A point "gripper" moves in a unit cube towards a goal drawn from (task, init state); the
cameras draw it as a bright square, so consecutive frames differ where it moves. Success when
it gets within `tolerance` of the goal. `fail_on` lists (task, init) pairs whose reset raises,
to test that an episode error is recorded and the run goes on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bench.suites.base import Env, Suite

VIEWS = ("agentview", "robot0_eye_in_hand")


class FakeEnv(Env):
    view_names = VIEWS

    def __init__(self, task_id: int, camera_size: int, max_steps: int, num_wait_steps: int,
                 tolerance: float, fail_on: list):
        self.task_id = task_id
        self.instruction = f"move the gripper to goal {task_id}"
        self.camera_size = camera_size
        self.max_steps = max_steps
        self.num_wait_steps = num_wait_steps
        self.tolerance = tolerance
        self.fail_on = {tuple(x) for x in fail_on}
        self.renders = 0

    def reset(self, init_state_idx: int, seed: int) -> None:
        if (self.task_id, init_state_idx) in self.fail_on:
            raise RuntimeError(f"fake failure in task {self.task_id} init {init_state_idx}")
        rng = np.random.default_rng([self.task_id, init_state_idx])
        self.pos = rng.uniform(0.2, 0.8, 3)
        self.goal = rng.uniform(0.2, 0.8, 3)
        self.grip = 0.0
        for _ in range(self.num_wait_steps):
            self.step(np.array([0, 0, 0, 0, 0, 0, -1.0]))

    def step(self, action: np.ndarray) -> bool:
        a = np.clip(np.asarray(action, dtype=np.float64), -1, 1)
        self.pos = np.clip(self.pos + 0.05 * a[:3], 0, 1)
        self.grip = float(a[6] > 0)
        return bool(np.linalg.norm(self.pos - self.goal) < self.tolerance)

    def _draw(self, pos) -> dict[str, np.ndarray]:
        self.renders += 1
        s = self.camera_size
        out = {}
        for i, view in enumerate(VIEWS):
            img = np.full((s, s, 3), 40 + 30 * i, dtype=np.uint8)
            r, c = int(pos[0] * (s - 9)), int(pos[1 + i] * (s - 9))
            img[r:r + 8, c:c + 8] = (250, 200, 50)
            out[view] = img
        return out

    def render(self) -> dict[str, np.ndarray]:
        return self._draw(self.pos)

    def snapshot(self):
        return self.pos.copy()

    def render_snapshot(self, snap) -> dict[str, np.ndarray]:
        return self._draw(snap)

    def proprio(self) -> np.ndarray:
        return np.concatenate([self.pos, np.zeros(3), [self.grip, -self.grip]]).astype(np.float32)

    def goal_status(self) -> list[bool]:
        """Two conjuncts: the x coordinate within tolerance of the goal's, and the full
        position (the success condition)."""
        return [bool(abs(self.pos[0] - self.goal[0]) < self.tolerance),
                bool(np.linalg.norm(self.pos - self.goal) < self.tolerance)]


@dataclass
class FakeSuite(Suite):
    n_tasks: int = 3
    n_init_states: int = 5
    tolerance: float = 0.1
    fail_on: list = field(default_factory=list)

    def num_tasks(self) -> int:
        return self.n_tasks

    def instruction(self, task_id: int) -> str:
        return f"move the gripper to goal {task_id}"

    def num_init_states(self, task_id: int) -> int:
        return self.n_init_states

    def make_env(self, task_id: int) -> FakeEnv:
        return FakeEnv(task_id, self.camera_size, self.max_steps, self.num_wait_steps,
                       self.tolerance, self.fail_on)
