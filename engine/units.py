"""Human units for the numbers people read: 12.3k tok/s, 1m23s, 45.2 MiB. Pure functions, torch-free.

The one place sizes and durations are formatted, for the engine's console lines and the cockpit's
screens, reports and errors alike. One unit system: sizes are binary (KiB, MiB, GiB, TiB: memory,
GPU memory, checkpoints and files alike), durations compact (4.2s, 1m23s, 2h05m, 3d04h).

Every function takes ``None`` (a value not known yet) and returns ``"—"`` for it, so callers can
format optional protocol fields without checking them first.
"""

from __future__ import annotations

import math

DASH = "—"


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def si(value: float | int | None, digits: int = 3) -> str:
    """A count with an SI suffix: 950, 12.3k, 4.56M, 1.2B (three significant digits by default)."""
    if _missing(value):
        return DASH
    v = float(value)
    sign = "-" if v < 0 else ""
    v = abs(v)
    units = ((1.0, ""), (1e3, "k"), (1e6, "M"), (1e9, "B"), (1e12, "T"))
    for i, (div, suffix) in enumerate(units):
        last = i == len(units) - 1
        if not last and v >= units[i + 1][0]:
            continue
        x = v / div
        text = f"{x:.{digits}g}"
        if not last and ("e" in text or float(text) >= 1000):
            continue  # 999.96k reads as 1.00M
        return sign + text + suffix
    return sign + str(v)  # unreachable


def params(n: int | None) -> str:
    """Parameter count: 1.23M params."""
    return DASH if _missing(n) else f"{si(n)} params"


def rate(tokens_per_s: float | None) -> str:
    """Throughput: 12.3k tok/s."""
    return DASH if _missing(tokens_per_s) else f"{si(tokens_per_s)} tok/s"


#: Binary size units, largest first.
_SIZE_UNITS = ((1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB"))


def nbytes(n: int | float | None) -> str:
    """A size in binary units: 812 B, 45.2 MiB, 1.3 GiB, 120 GiB (a negative size keeps its sign)."""
    if _missing(n):
        return DASH
    v = float(n)
    sign, v = ("-" if v < 0 else ""), abs(v)
    for div, unit in _SIZE_UNITS:
        if v >= div * 0.9995:
            x = v / div
            return f"{sign}{x:.0f} {unit}" if x >= 99.95 else f"{sign}{x:.1f} {unit}"
    return f"{sign}{int(v)} B"


def bytes_pair(used: int | float | None, total: int | float | None) -> str:
    """``used/total`` sharing the unit of the total: 5.1/15.6 GiB."""
    if _missing(used) or _missing(total) or not total:
        return nbytes(used)
    div, unit = next((div, unit) for div, unit in (*_SIZE_UNITS, (1, "B")) if total >= div)
    u, t = used / div, total / div
    fmt = ".0f" if t >= 100 else ".1f"
    return f"{u:{fmt}}/{t:{fmt}} {unit}"


def duration(seconds: float | None) -> str:
    """A duration: 4.2s, 1m23s, 2h05m, 3d04h."""
    if _missing(seconds):
        return DASH
    s = max(0.0, float(seconds))
    if s < 10:
        return f"{s:.1f}s"
    s = int(round(s))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    if h < 24:
        return f"{h}h{m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d{h:02d}h"


def loss(value: float | None) -> str:
    """A loss value with four significant digits: 10.37, 2.345, 0.8123."""
    if value is None:
        return DASH
    if isinstance(value, float) and not math.isfinite(value):
        return "nan"
    v = float(value)
    if abs(v) >= 100:
        return f"{v:.1f}"
    if abs(v) >= 10:
        return f"{v:.2f}"
    if abs(v) >= 1:
        return f"{v:.3f}"
    return f"{v:.4f}"


def lr(value: float | None) -> str:
    """A learning rate in scientific notation: 3.00e-04."""
    return DASH if _missing(value) else f"{float(value):.2e}"


def percent(value: float | None, digits: int = 0) -> str:
    return DASH if _missing(value) else f"{float(value):.{digits}f}%"


def integer(value: int | None) -> str:
    """An integer with thousands separators: 12,345."""
    return DASH if _missing(value) else f"{int(value):,}"
