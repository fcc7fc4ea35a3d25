"""prunelens: which tokens of a model's chain of thought matter to the model itself."""

__version__ = "0.1.0"
