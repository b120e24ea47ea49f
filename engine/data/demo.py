"""The demo corpus: synthetic, seeded text that a tiny model visibly learns in minutes on a CPU.

One document per line, drawn from a handful of patterns: arithmetic facts ("17 + 25 = 42."),
counting, the alphabet, fixed facts, and templated sentences from small word lists. Each pattern
has a learnable structure (a fixed template, a deterministic continuation) and some entropy (the
numbers and words drawn), so the loss falls fast and then levels off. The same seed gives the same
file byte for byte (Python's ``random.Random`` is stable across versions for the calls used here).
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator
from pathlib import Path

from engine.atomic import atomic_write_text

ADJECTIVES = ["red", "blue", "green", "small", "big", "quick", "lazy", "happy", "old", "young", "bright", "quiet"]
NOUNS = ["cat", "dog", "bird", "fox", "horse", "fish", "child", "robot", "farmer", "teacher", "king", "sailor"]
VERBS = ["sees", "likes", "follows", "finds", "helps", "watches", "chases", "greets"]
PLACES = ["park", "river", "house", "garden", "forest", "city", "school", "market"]
FACTS = [
    "the sky is blue.",
    "grass is green.",
    "snow is white.",
    "the sun is hot.",
    "ice is cold.",
    "fire is hot.",
    "a week has seven days.",
    "a year has twelve months.",
    "a cat has four legs.",
    "a bird has two wings.",
    "water is wet.",
    "the night is dark.",
]
WORD_NUMBERS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
]
DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _addition(rng: random.Random) -> str:
    a, b = rng.randint(0, 50), rng.randint(0, 50)
    return f"{a} + {b} = {a + b}."


def _subtraction(rng: random.Random) -> str:
    a = rng.randint(0, 50)
    b = rng.randint(0, a)
    return f"{a} - {b} = {a - b}."


def _multiplication(rng: random.Random) -> str:
    a, b = rng.randint(1, 10), rng.randint(1, 10)
    return f"{a} x {b} = {a * b}."


def _counting(rng: random.Random) -> str:
    start = rng.randint(0, 40)
    n = rng.randint(4, 9)
    return "count: " + " ".join(str(i) for i in range(start, start + n)) + "."


def _word_counting(rng: random.Random) -> str:
    start = rng.randint(0, 6)
    n = rng.randint(3, 6)
    return " ".join(WORD_NUMBERS[start : start + n]) + "."


def _alphabet(rng: random.Random) -> str:
    start = rng.randint(0, 18)
    n = rng.randint(4, 8)
    return "letters: " + " ".join(LETTERS[start : start + n]) + "."


def _days(rng: random.Random) -> str:
    i = rng.randrange(len(DAYS))
    return f"after {DAYS[i]} comes {DAYS[(i + 1) % len(DAYS)]}."


def _fact(rng: random.Random) -> str:
    return rng.choice(FACTS)


def _sentence(rng: random.Random) -> str:
    a1, n1, v, a2, n2, p = (
        rng.choice(ADJECTIVES),
        rng.choice(NOUNS),
        rng.choice(VERBS),
        rng.choice(ADJECTIVES),
        rng.choice(NOUNS),
        rng.choice(PLACES),
    )
    if rng.random() < 0.5:
        return f"the {a1} {n1} {v} the {a2} {n2}."
    return f"the {a1} {n1} {v} the {a2} {n2} in the {p}."


def _story(rng: random.Random) -> str:
    n1, n2, p = rng.choice(NOUNS), rng.choice(NOUNS), rng.choice(PLACES)
    return f"once upon a time a {n1} lived near the {p}. one day the {n1} met a {n2}. they became friends."


#: (pattern, weight)
PATTERNS: list[tuple[Callable[[random.Random], str], int]] = [
    (_addition, 4),
    (_subtraction, 2),
    (_multiplication, 2),
    (_counting, 3),
    (_word_counting, 2),
    (_alphabet, 2),
    (_days, 2),
    (_fact, 2),
    (_sentence, 5),
    (_story, 2),
]


def demo_lines(samples: int, seed: int) -> Iterator[str]:
    """``samples`` documents of the demo corpus, one per item, without newlines."""
    rng = random.Random(seed)
    funcs = [f for f, _ in PATTERNS]
    weights = [w for _, w in PATTERNS]
    for _ in range(samples):
        (func,) = rng.choices(funcs, weights)
        yield func(rng)


def generate_demo_corpus(path: str | os.PathLike, samples: int, seed: int) -> Path:
    """Write the demo corpus to ``path`` atomically (temporary file, then rename) and return it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "".join(line + "\n" for line in demo_lines(samples, seed)))
    return path
