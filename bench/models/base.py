"""The interface a model adapter exposes to the policy wrapper and the shared pruned forward."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import torch

from pruning.base import ModelSpec
from pruning.forward import DecoderSpec
from pruning.layout import TokenLayout


class VLAAdapter(ABC):
    """A VLA split into the stages the harness times: vision -> decoder -> head.

    view_names: the camera views the model reads, in layout order.
    chunk_len / action_dim: shape of one predicted action chunk.
    """

    name: str
    view_names: tuple[str, ...]
    patch_size: int
    chunk_len: int
    action_dim: int
    device: torch.device = torch.device("cpu")

    @abstractmethod
    def reset(self, instruction: str) -> None:
        """Start of an episode with this instruction (tokenise once)."""

    @abstractmethod
    def patches(self, images: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """view -> (N_view, patch_size**2 * 3) uint8 raw pixels of the image the model sees, one
        row per patch in row-major patch order, each row the patch's pixels row by row."""

    @abstractmethod
    def encode(self, images: dict[str, np.ndarray], proprio: np.ndarray
               ) -> tuple[torch.Tensor, TokenLayout]:
        """Vision stage: (1, n_tokens, D) decoder input embeddings and their layout."""

    @abstractmethod
    def decoder(self) -> DecoderSpec: ...

    @abstractmethod
    def model_spec(self, layout: TokenLayout) -> ModelSpec: ...

    @abstractmethod
    def head(self, action_hidden: torch.Tensor) -> torch.Tensor:
        """(1, chunk_len, D) action-query states -> (chunk_len, action_dim) normalised actions."""

    @abstractmethod
    def to_env_actions(self, actions: torch.Tensor) -> np.ndarray:
        """(chunk_len, action_dim) normalised -> env actions, gripper binarised to -1/+1."""

    @abstractmethod
    def reference_forward(self, input_embeds: torch.Tensor) -> torch.Tensor:
        """The model's own decoder forward (no pruning loop): (1, chunk_len, D) final-normed
        action-query states. Used to test that the pruned forward with nothing pruned equals it."""

    def describe(self) -> dict:
        return {"name": self.name}
