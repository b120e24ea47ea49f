"""Human units for numbers the cockpit shows: durations, rates, sizes. Pure functions."""

from __future__ import annotations

import math


def duration(seconds: float | None) -> str:
    """``83`` -> ``1m23s``; ``7260`` -> ``2h01m``; None -> ``--``."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "--"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{h}h{m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d{h:02d}h"


def si(value: float | None, unit: str = "", digits: int = 1) -> str:
    """``12345`` -> ``12.3k``; keeps small numbers as they are."""
    if value is None or not math.isfinite(value):
        return "--"
    for threshold, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= threshold:
            return f"{value / threshold:.{digits}f}{suffix}{unit}"
    return f"{value:.{digits}f}{unit}" if value != int(value) else f"{int(value)}{unit}"


def size(n_bytes: float | None) -> str:
    """Bytes in binary units: ``1536`` -> ``1.5 KiB``."""
    if n_bytes is None or not math.isfinite(n_bytes):
        return "--"
    n = float(n_bytes)
    for suffix in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or suffix == "TiB":
            return f"{int(n)} {suffix}" if suffix == "B" else f"{n:.1f} {suffix}"
        n /= 1024
    return f"{n:.1f} TiB"


def loss(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "nan" if value is not None else "--"
    return f"{value:.4f}"


def lr(value: float | None) -> str:
    return "--" if value is None else f"{value:.2e}"
