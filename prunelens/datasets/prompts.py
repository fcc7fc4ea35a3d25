"""Prompt text for a model: its chat template when it has one, a plain layout otherwise."""

from __future__ import annotations


def build_prompt(tokenizer, user_message: str) -> str:
    """The text that precedes the reasoning: a user turn and the start of the assistant's turn."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": user_message}], tokenize=False, add_generation_prompt=True
        )
    return f"Question: {user_message}\nAnswer: "
