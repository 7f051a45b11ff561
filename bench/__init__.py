"""vla-prune-bench: an evaluation harness for visual-token pruning in VLA policies."""
