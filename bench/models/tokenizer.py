"""A word-level tokenizer over the LIBERO instructions, built offline (scripts/build_vocab.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

PAD, BOS, UNK = "<pad>", "<bos>", "<unk>"
SPECIALS = (PAD, BOS, UNK)
DEFAULT_VOCAB = Path(__file__).parent / "assets" / "libero_vocab.json"


def split_words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


class WordTokenizer:
    """Maps an instruction to word ids; unknown words map to `<unk>` (and are counted)."""

    def __init__(self, words: list[str]):
        self.vocab = list(SPECIALS) + [w for w in words if w not in SPECIALS]
        self.ids = {w: i for i, w in enumerate(self.vocab)}
        self.pad_id, self.bos_id, self.unk_id = (self.ids[s] for s in SPECIALS)

    @classmethod
    def from_instructions(cls, instructions: list[str]) -> WordTokenizer:
        return cls(sorted({w for s in instructions for w in split_words(s)}))

    @classmethod
    def load(cls, path: str | Path = DEFAULT_VOCAB) -> WordTokenizer:
        return cls(json.loads(Path(path).read_text())["words"])

    def save(self, path: str | Path) -> None:
        words = self.vocab[len(SPECIALS):]
        Path(path).write_text(json.dumps({"words": words}, indent=0) + "\n")

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> list[int]:
        return [self.ids.get(w, self.unk_id) for w in split_words(text)]
