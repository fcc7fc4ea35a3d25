"""Answer extraction and comparison shared by the benchmarks."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_NUMBER = re.compile(r"-?\$?\s*\d[\d,]*(?:\.\d+)?|-?\.\d+")


def normalize_number(text: str) -> Decimal | None:
    """Parse '$1,234.50.' style numbers; None when the text holds no single number."""
    cleaned = text.strip().rstrip(".").replace(",", "").replace("$", "").replace(" ", "")
    cleaned = cleaned.rstrip("%")
    try:
        return Decimal(cleaned)
    except InvalidOperation:
        return None


def last_number(text: str) -> str | None:
    """The last number written in the text, as written."""
    found = _NUMBER.findall(text)
    return found[-1] if found else None


def numbers_equal(predicted: str | None, gold: str) -> bool:
    """Numeric equality after normalising commas, '$' and a trailing '.'."""
    if predicted is None:
        return False
    a, b = normalize_number(predicted), normalize_number(gold)
    return a is not None and b is not None and a == b


_LETTER_AFTER_CUE = re.compile(r"answer is:?\s*\(?([A-J])\)?", re.IGNORECASE)
_BARE_LETTER = re.compile(r"^\s*\(?([A-J])\)?[.)]?\s*$")


def extract_letter(text: str) -> str | None:
    """The option letter stated by 'the answer is (X)', or a bare letter answer."""
    cued = _LETTER_AFTER_CUE.findall(text)
    if cued:
        return cued[-1].upper()
    bare = _BARE_LETTER.match(text)
    return bare.group(1).upper() if bare else None


def math_equal(completion: str, gold: str) -> bool:
    """MATH grading with math-verify: parse both sides and compare symbolically."""
    from math_verify import parse, verify

    gold_parsed = parse(gold if "$" in gold or "\\boxed" in gold else f"${gold}$")
    predicted = parse(completion)
    if not gold_parsed or not predicted:
        return False
    return bool(verify(gold_parsed, predicted))
