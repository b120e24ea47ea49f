"""Run configs shipped with cockpit. ``builtin("demo")`` is the path of ``configs/demo.yaml``."""

from pathlib import Path

DIR = Path(__file__).resolve().parent


def builtin(name: str) -> Path | None:
    """Path of the shipped config called ``name`` (``demo``, ``test``...), or None."""
    path = DIR / f"{name}.yaml"
    return path if path.is_file() else None
