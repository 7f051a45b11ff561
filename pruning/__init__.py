"""Visual-token pruning methods on one shared pruned forward (no simulator imports)."""
