"""The interface every suite adapter implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Observation:
    """What the policy sees at a query.

    images: view name -> (H, W, 3) uint8, upright (already flipped where the simulator needs it).
    proprio: (P,) float32 robot state.
    """

    images: dict[str, np.ndarray]
    proprio: np.ndarray


class Env(ABC):
    """One task's environment. `step` is physics only; `render` draws the cameras on demand."""

    instruction: str
    max_steps: int
    num_wait_steps: int = 0
    view_names: tuple[str, ...] = ()

    @abstractmethod
    def reset(self, init_state_idx: int, seed: int) -> None:
        """Put the env in fixed initial state `init_state_idx` and run the wait steps."""

    @abstractmethod
    def step(self, action: np.ndarray) -> bool:
        """Apply one (7,) action; return True when the task is done (success)."""

    @abstractmethod
    def render(self) -> dict[str, np.ndarray]:
        """Images of every view at the current state: name -> (H, W, 3) uint8."""

    @abstractmethod
    def proprio(self) -> np.ndarray:
        """(P,) float32 robot state."""

    def snapshot(self):
        """A cheap copy of what rendering depends on (called every step by the runner, so a
        method can later ask for a past frame without rendering every step)."""
        return None

    def render_snapshot(self, snap) -> dict[str, np.ndarray]:
        """Images of a past state from `snapshot()`; must leave the current physics untouched."""
        raise NotImplementedError(f"{type(self).__name__} cannot render past frames")

    def observe(self) -> Observation:
        return Observation(images=self.render(), proprio=self.proprio())

    def goal_status(self) -> list[bool] | None:
        """Each conjunct of the task's goal, true or not at the current state (a two-step task
        has two), or None when the env cannot tell. Read only: no physics, no rendering."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


@dataclass
class Suite(ABC):
    """A named list of tasks, each with fixed initial states."""

    name: str
    max_steps: int
    num_wait_steps: int = 0
    camera_size: int = 160
    trials_per_task: int = 10
    tasks: list[int] | None = None  # None = every task
    extra: dict = field(default_factory=dict)

    @abstractmethod
    def num_tasks(self) -> int: ...

    @abstractmethod
    def instruction(self, task_id: int) -> str: ...

    @abstractmethod
    def num_init_states(self, task_id: int) -> int: ...

    @abstractmethod
    def make_env(self, task_id: int) -> Env: ...

    def task_ids(self) -> list[int]:
        """The task ids to run (`tasks`, or all), checked against the suite's range."""
        from bench.errors import UserError

        n = self.num_tasks()
        ids = list(range(n)) if self.tasks is None else [int(t) for t in self.tasks]
        bad = [t for t in ids if not 0 <= t < n]
        if bad:
            raise UserError(f"suite {self.name} has tasks 0..{n - 1}; unknown task id(s) {bad}: "
                            "fix tasks=")
        return ids

    def check_available(self) -> None:  # noqa: B027 - optional hook
        """Raise UserError naming the fix if the simulator or its assets are missing."""
