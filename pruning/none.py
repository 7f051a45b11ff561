"""`none`: the unpruned model, run through the same shared loop as every method."""

from pruning.base import PruningMethod


class NoPruning(PruningMethod):
    name = "none"
    uses_alpha = False

    def __init__(self, alpha: float | None = None):
        self.alpha = alpha
