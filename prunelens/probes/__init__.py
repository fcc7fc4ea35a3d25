"""Probes of model internals: attention hook backends, attention features, H2O, the surrogate."""
