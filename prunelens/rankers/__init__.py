"""Baselines that rank reasoning tokens for removal."""
