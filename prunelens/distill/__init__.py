"""Distillation: teacher chains, pruned by any ranker, teach a student (paper §4): teach, fine-tune, evaluate."""
