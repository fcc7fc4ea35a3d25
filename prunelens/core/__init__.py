"""The ground floor: types and plumbing every other layer stands on (chains, rankings, keep arithmetic,
objectives, settings, provenance, errors, JSON Lines, progress, the registry). Nothing here imports anything
outside ``prunelens.core``; ``tests/test_layers.py`` checks it."""
