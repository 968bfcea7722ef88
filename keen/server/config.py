"""Projects and keys the local server knows, and the development defaults.

The server always serves one *primary* project (from the command line, the ``KEEN_*`` environment
variables or the development values below). More projects may be declared in a JSON file named by
the ``KEEN_SERVER_CONFIG`` environment variable::

    {"projects": [
        {"project_id": "0123456789abcdef01234567",
         "master_key": "...", "read_key": "...", "write_key": "..."}
    ]}

``read_key`` and ``write_key`` are optional in the file (access keys created through the API work
as well). The development values are public on purpose: they identify a throwaway local server,
never a real Keen account.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
CONFIG_ENV = "KEEN_SERVER_CONFIG"

# "10ca1de5" ("local dev") prefixes; the keys end with the hex of MAST, READ and WRIT so a reader
# of a log can tell them apart. The master key is 64 hex digits so scoped keys use the modern
# AES key derivation (keen-api.md 16.2).
DEV_PROJECT_ID = "10ca1de50000000000000000"
DEV_MASTER_KEY = "10CA1DE5" + "0" * 48 + "4D415354"
DEV_READ_KEY = "10CA1DE5" + "0" * 48 + "52454144"
DEV_WRITE_KEY = "10CA1DE5" + "0" * 48 + "57524954"

_ENV_NAMES = {
    "project_id": "KEEN_PROJECT_ID",
    "master_key": "KEEN_MASTER_KEY",
    "read_key": "KEEN_READ_KEY",
    "write_key": "KEEN_WRITE_KEY",
}
_DEV_VALUES = {
    "project_id": DEV_PROJECT_ID,
    "master_key": DEV_MASTER_KEY,
    "read_key": DEV_READ_KEY,
    "write_key": DEV_WRITE_KEY,
}


class ConfigError(ValueError):
    """The server configuration (options or config file) is not usable."""


@dataclass(frozen=True, repr=False)
class ProjectConfig:
    """One project served locally, with its fixed keys (``None``: the project has no such key)."""

    project_id: str
    master_key: str
    read_key: str | None = None
    write_key: str | None = None

    def __repr__(self) -> str:  # keys are secrets: never in a repr
        return f"ProjectConfig(project_id={self.project_id!r})"

    def __post_init__(self) -> None:
        if not isinstance(self.project_id, str) or not self.project_id:
            raise ConfigError("project_id must be a non-empty string")
        if "/" in self.project_id:
            raise ConfigError(f"project_id {self.project_id!r} must not contain '/'")
        for field in ("master_key", "read_key", "write_key"):
            value = getattr(self, field)
            if value is None and field != "master_key":
                continue
            if not isinstance(value, str) or not value:
                raise ConfigError(
                    f"{field} of project {self.project_id!r} must be a non-empty string"
                )


def resolve_primary(
    *,
    project_id: str | None = None,
    master_key: str | None = None,
    read_key: str | None = None,
    write_key: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> ProjectConfig:
    """The primary project: explicit values, else ``KEEN_*`` from ``environ``, else dev values.

    Pass ``environ=None`` to ignore the environment (in-process servers in tests should not pick
    up a developer's real keys).
    """
    given = {
        "project_id": project_id,
        "master_key": master_key,
        "read_key": read_key,
        "write_key": write_key,
    }
    values: dict[str, str] = {}
    for field, value in given.items():
        if value is None and environ is not None:
            value = environ.get(_ENV_NAMES[field]) or None
        values[field] = value if value is not None else _DEV_VALUES[field]
    return ProjectConfig(**values)


def load_config_file(path: str) -> list[ProjectConfig]:
    """Read the extra projects declared in the JSON file at ``path``."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read server config file {path!r}: {exc.strerror}") from exc
    except ValueError as exc:
        raise ConfigError(f"server config file {path!r} is not valid JSON: {exc}") from exc
    projects = data.get("projects") if isinstance(data, dict) else None
    if not isinstance(projects, list):
        raise ConfigError(f"server config file {path!r} must be an object with a 'projects' list")
    return [_project_from_json(item, path) for item in projects]


def _project_from_json(item: Any, path: str) -> ProjectConfig:
    allowed = {"project_id", "master_key", "read_key", "write_key"}
    if not isinstance(item, dict) or not {"project_id", "master_key"} <= item.keys():
        raise ConfigError(
            f"each project in {path!r} needs at least 'project_id' and 'master_key'"
        )
    unknown = sorted(set(item) - allowed)
    if unknown:
        raise ConfigError(f"unknown project field(s) in {path!r}: {', '.join(unknown)}")
    return ProjectConfig(**item)


def projects_from_environment(primary: ProjectConfig) -> list[ProjectConfig]:
    """The primary project followed by those of the ``KEEN_SERVER_CONFIG`` file, if set."""
    path = os.environ.get(CONFIG_ENV)
    extra = load_config_file(path) if path else []
    return merge_projects(primary, extra)


def merge_projects(primary: ProjectConfig, extra: Iterable[ProjectConfig]) -> list[ProjectConfig]:
    """Primary first; a project id may appear only once."""
    projects = [primary]
    seen = {primary.project_id}
    for project in extra:
        if project.project_id in seen:
            raise ConfigError(f"project {project.project_id!r} is declared twice")
        seen.add(project.project_id)
        projects.append(project)
    return projects
