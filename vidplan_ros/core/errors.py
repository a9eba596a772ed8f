"""Errors that tell the user what was wrong and how to fix it."""

from __future__ import annotations

from typing import Any


class VidplanError(Exception):
    """Base class of every error vidplan_ros raises on purpose."""


class ConfigValueError(VidplanError, ValueError):
    """A config dataclass field holds a value it does not allow.

    Raised from `__post_init__`; the config loader adds the file and the full key.
    """

    def __init__(self, field: str, value: Any, allowed: str) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(f'{field} = {value!r} is not allowed: {allowed}')


class ConfigError(VidplanError, ValueError):
    """A config file (or override) could not be turned into a config object."""

    def __init__(self, source: str, key: str, value: Any, allowed: str) -> None:
        self.source = source
        self.key = key
        self.value = value
        self.allowed = allowed
        super().__init__(
            f'{source}: key {key!r} = {value!r} is not allowed: {allowed}. '
            f'Fix the value in {source}.')
