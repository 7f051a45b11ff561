"""Scripted LIBERO expert with privileged simulator state (skills + goal -> plan)."""

from bench.expert.expert import EXPERT_VERSION, Expert, run_episode

__all__ = ["EXPERT_VERSION", "Expert", "run_episode"]
