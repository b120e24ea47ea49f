"""How deep parsed JSON or YAML nests, measured without recursion. Torch-free.

The one measure behind every depth bound on what comes from outside: a config file and a ``--set``
value (``engine.config``), a JSON schema (``engine.json_constraint``), a request body (``engine.serve``).
"""

from __future__ import annotations

from typing import Any


def nested_deeper(value: Any, limit: int) -> bool:
    """Whether ``value`` has mappings and lists nested more than ``limit`` deep (a container holding
    no container is 1 deep; a scalar 0). Without recursion, so any depth can be measured; it stops at
    the first container past ``limit``."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False
