"""Functional categories of reasoning tokens: annotators (offline rules, an LLM) and their stored labels."""
