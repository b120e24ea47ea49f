"""The new run the wizard is putting together: a config mapping edited one key at a time.

``RunDraft`` holds the keys as they will be written to the config file (only what the wizard or
the user set; every other key keeps ``engine.config``'s default), and is immutable: each edit
returns a new draft, so a screen can hold one and compare. ``check()`` validates it with the same
models ``cockpit run`` loads, and gives each problem with the key it is about, for the review
screen to show beside its field. ``save()`` writes YAML that ``cockpit run FILE`` and
``cockpit check FILE`` take unchanged.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.atomic import atomic_write_text
from engine.config import ConfigError, ConfigProblem, RunConfig, load_config, set_dotted, validate_config

#: The first line of a saved draft.
HEADER = "# Written by the cockpit wizard; run it with `cockpit run {name}`, check it with `cockpit check {name}`.\n"


@dataclass(frozen=True)
class DraftCheck:
    """A draft validated: the config it makes, or the problems that stop it."""

    config: RunConfig | None
    """The validated config (relative paths as written), or None when a problem stops it."""
    problems: tuple[ConfigProblem, ...] = ()
    """Every problem, each with its dotted key (``""`` for a check across fields)."""

    @property
    def ok(self) -> bool:
        return self.config is not None

    def problem_at(self, key: str) -> str | None:
        """The message of the problem about ``key`` (or about a key inside it), or None."""
        for problem in self.problems:
            if problem.key == key or problem.key.startswith(key + "."):
                return problem.message
        return None


@dataclass(frozen=True)
class RunDraft:
    """A config mapping under construction (``{"preset": "tiny", "train": {"lr": 0.003}}``)."""

    values: dict[str, Any] = field(default_factory=dict)
    """The keys set so far, nested as in the config file. Never mutated: ``set`` copies."""

    def get(self, key: str, default: Any = None) -> Any:
        """The value at the dotted ``key`` as set in the draft, else ``default``."""
        node: Any = self.values
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    def set(self, key: str, value: Any) -> RunDraft:
        """A draft with the dotted ``key`` set to ``value`` (``None`` removes the key)."""
        values = copy.deepcopy(self.values)
        if value is None:
            *parents, leaf = key.split(".")
            node = values
            for part in parents:
                node = node.get(part)
                if not isinstance(node, dict):
                    return self
            node.pop(leaf, None)
        else:
            set_dotted(values, key, value)
        return RunDraft(values)

    def update(self, changes: dict[str, Any]) -> RunDraft:
        """A draft with every dotted key of ``changes`` set."""
        draft = self
        for key, value in changes.items():
            draft = draft.set(key, value)
        return draft

    def check(self) -> DraftCheck:
        config, problems = validate_config(copy.deepcopy(self.values))
        return DraftCheck(config, tuple(problems))

    def to_yaml(self) -> str:
        return yaml.safe_dump(_plain(self.values), sort_keys=False)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the draft as a config file (atomically); ConfigError when it does not validate, so a
        saved file always runs."""
        path = Path(path)
        checked = self.check()
        if not checked.ok:
            raise ConfigError("\n".join(problem.line(str(path)) for problem in checked.problems))
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, HEADER.format(name=path) + self.to_yaml(), fsync=False)
        return path

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> RunDraft:
        """A draft from a config file; ConfigError (naming the file and key) when it is not valid."""
        load_config(path)  # the file's problems, named as `cockpit run` names them
        return cls(yaml.safe_load(Path(path).read_text(encoding="utf-8")))


def _plain(value: Any) -> Any:
    """Paths as strings, tuples as lists: what YAML writes as plain scalars and sequences."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value) if isinstance(value, os.PathLike) else value
