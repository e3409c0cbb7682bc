"""What a lexicon term is and how it becomes a pattern: the rules the term's model validates
(review/models.py) and the scanner compiles (review/lexicon.py), kept below both."""

import regex
from django.db import models


class TermKind(models.TextChoices):
    TERM = "term"
    PHRASE = "phrase"
    REGEX = "regex", "regular expression"


def term_problem(kind: str, value: str) -> str:
    """Why a term cannot be used ("" when it can): administrators see this in the admin."""
    if not value.strip():
        return "A term cannot be empty."
    if kind == TermKind.REGEX:
        try:
            regex.compile(value)
        except regex.error as error:
            return f"Not a valid regular expression: {error}."
    return ""


def term_pattern(kind: str, value: str, whole_word: bool) -> str:
    if kind == TermKind.REGEX:
        pattern = value
    else:  # a phrase matches across any run of whitespace
        pattern = r"\s+".join(regex.escape(word) for word in value.split())
    return rf"(?<!\w)(?:{pattern})(?!\w)" if whole_word else pattern
