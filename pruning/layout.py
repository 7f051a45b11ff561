"""The token layout: named segments of a VLA's decoder input sequence.

A layout says where each part of the sequence sits (BOS, each camera view's patch tokens,
proprio, instruction, action queries, ...), so methods select visual tokens by segment and per
view, and the action head finds the action-query tokens by name, never by an offset from the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import torch

VISUAL = "visual"
TEXT = "text"
ACTION = "action"
OTHER = "other"  # BOS, proprio, stop tokens: always kept


@dataclass(frozen=True)
class Segment:
    name: str  # e.g. "bos", "agentview", "robot0_eye_in_hand", "proprio", "instruction", "action"
    kind: str  # VISUAL | TEXT | ACTION | OTHER
    start: int
    end: int  # exclusive

    @property
    def length(self) -> int:
        return self.end - self.start


@dataclass
class TokenLayout:
    """Ordered segments covering positions 0..n_tokens-1 of the full (unpruned) sequence.

    `patch_grid` is the (rows, cols) patch grid of each visual segment (row-major patch order).
    """

    segments: list[Segment]
    patch_grid: tuple[int, int] = (0, 0)
    _by_name: dict[str, Segment] = field(init=False, repr=False)

    def __post_init__(self):
        pos = 0
        for seg in self.segments:
            if seg.start != pos or seg.end < seg.start:
                raise ValueError(f"segments must be contiguous from 0; bad segment {seg}")
            pos = seg.end
        self._by_name = {s.name: s for s in self.segments}
        if len(self._by_name) != len(self.segments):
            raise ValueError("segment names must be unique")

    @classmethod
    def build(cls, parts: list[tuple[str, str, int]], patch_grid=(0, 0)) -> TokenLayout:
        """parts: [(name, kind, length), ...] in sequence order."""
        segs, pos = [], 0
        for name, kind, length in parts:
            segs.append(Segment(name, kind, pos, pos + length))
            pos += length
        return cls(segs, patch_grid)

    @property
    def n_tokens(self) -> int:
        return self.segments[-1].end if self.segments else 0

    def __getitem__(self, name: str) -> Segment:
        return self._by_name[name]

    def of_kind(self, kind: str) -> list[Segment]:
        return [s for s in self.segments if s.kind == kind]

    @property
    def views(self) -> list[str]:
        return [s.name for s in self.of_kind(VISUAL)]

    @property
    def n_visual(self) -> int:
        return sum(s.length for s in self.of_kind(VISUAL))

    @cached_property
    def tail_spans(self) -> dict[str, tuple[int, int]]:
        """kind -> (start, end) for each non-visual kind (text, action) whose segments form one
        run starting at or after the end of the last visual segment."""
        vis = self.of_kind(VISUAL)
        vis_end = vis[-1].end if vis else 0
        out = {}
        for kind in (TEXT, ACTION):
            segs = self.of_kind(kind)
            if segs and segs[0].start >= vis_end and all(
                    a.end == b.start for a, b in zip(segs, segs[1:], strict=False)):
                out[kind] = (segs[0].start, segs[-1].end)
        return out

    def indices(self, kind: str) -> torch.Tensor:
        """(k,) long: positions of every token of `kind`, in sequence order."""
        parts = [torch.arange(s.start, s.end) for s in self.of_kind(kind)]
        return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long)

    def kind_of(self) -> torch.Tensor:
        """(n_tokens,) int8 code per position: 0 other, 1 visual, 2 text, 3 action."""
        codes = {OTHER: 0, VISUAL: 1, TEXT: 2, ACTION: 3}
        out = torch.zeros(self.n_tokens, dtype=torch.int8)
        for s in self.segments:
            out[s.start:s.end] = codes[s.kind]
        return out

    def view_of(self) -> torch.Tensor:
        """(n_tokens,) long: view number (0, 1, ...) for visual positions, -1 elsewhere."""
        out = torch.full((self.n_tokens,), -1, dtype=torch.long)
        for i, s in enumerate(self.of_kind(VISUAL)):
            out[s.start:s.end] = i
        return out
