"""The one rule for a path that came from outside: a checkpoint manifest's entries, the upload
queue, a config's run name, a remote listing. Torch-free.

Such a path is only ever a *name inside a root*: a plain relative POSIX path (``model.safetensors``,
``tokenizer/vocab.json``) with no ``..``, no ``.``, no empty part, no absolute start, no backslash and
no control character, and, where the root is on this machine, no symlink leading out of it. A run
name is one path component. Anything else is refused with :class:`UnsafePath` naming the entry and
where it came from, before anything is read or written: sync, upload, verify, resume and export all
go through here.
"""

from __future__ import annotations

import os
from pathlib import Path


class UnsafePath(ValueError):
    """A name from outside would reach outside its root; the message names it and where it was read."""


def _bad_part(part: str) -> str | None:
    if part in ("", ".", ".."):
        return "an empty, '.' or '..' part"
    if any(ord(c) < 32 or c == "\x7f" for c in part):
        return "a control character"
    if "\\" in part:
        return "a backslash"
    return None


def relative_name(rel: object, where: str) -> str:
    """``rel`` when it is a plain relative path (``a/b.json``); UnsafePath naming it and ``where``
    (the file or listing it came from) otherwise."""
    if not isinstance(rel, str):
        raise UnsafePath(f"{where}: entry {rel!r} is not a file name")
    if rel.startswith("/") or (len(rel) > 1 and rel[1] == ":"):
        raise UnsafePath(f"{where}: entry {rel!r} is an absolute path; only names inside the directory are allowed")
    for part in rel.split("/"):
        why = _bad_part(part)
        if why is not None:
            raise UnsafePath(f"{where}: entry {rel!r} has {why}; only plain names inside the directory are allowed")
    return rel


def component(name: object, what: str) -> str:
    """``name`` when it is one plain path component (a run name); UnsafePath saying ``what`` it is
    and what is allowed otherwise."""
    if not isinstance(name, str) or "/" in name or _bad_part(name) is not None:
        raise UnsafePath(
            f"{what} {name!r}: must be one plain name (no '/', '\\', '..' or control characters), e.g. 'my-run'"
        )
    return name


def inside(root: str | os.PathLike, rel: str, where: str) -> Path:
    """``root / rel`` on this machine, once ``rel`` passes :func:`relative_name` and the path, with
    every symlink followed, is still under ``root`` (a link leading out is refused)."""
    root = Path(root)
    path = root / relative_name(rel, where)
    real_root = root.resolve()
    real = path.resolve()
    if real != real_root and real_root not in real.parents:
        raise UnsafePath(f"{where}: entry {rel!r} leads outside {root} (a symlink to {real})")
    return path
