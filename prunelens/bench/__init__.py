"""Benchmarks of greedy pruning: exact and approximate modes against the rounding floor, and the long-chain
scaling study. Stands above every other layer; the library below knows nothing of it."""
