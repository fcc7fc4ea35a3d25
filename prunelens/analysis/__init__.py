"""Analyses of finished runs: rank dynamics of greedy pruning, retention of functional categories."""
