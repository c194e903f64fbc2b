"""Reading a domain YAML: environment variables, validation with one clear message, overrides."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from index.config.models import DomainConfig
from index.errors import DamageRagError


class ConfigError(DamageRagError, ValueError):
    """The configuration file is missing, is not YAML, or does not validate."""


_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand_env(value: Any, where: str = "") -> Any:
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in os.environ:
                return os.environ[name]
            if default is not None:
                return default
            raise ConfigError(
                f"{where or 'config'}: environment variable {name} is not set and has no default"
            )

        return _ENV_PATTERN.sub(substitute, value)
    if isinstance(value, dict):
        return {k: _expand_env(v, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def _describe(error: ValidationError, source: str) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            lines.append(f"{source}: unknown key '{where}'")
        else:
            lines.append(f"{source}: {where}: {item['msg']}")
    return "; ".join(lines)


def parse_config(data: dict[str, Any], source: str = "config") -> DomainConfig:
    """Validate a configuration mapping.

    Args:
        data: The parsed YAML mapping.
        source: Name used in error messages (usually the file path).

    Returns:
        The validated configuration.

    Raises:
        ConfigError: With one message naming each bad or unknown key.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    try:
        return DomainConfig.model_validate(_expand_env(data))
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from None


def resolve_config_path(path: str | Path) -> Path:
    """``path`` itself when it exists; else the config of that file name shipped with the package.

    So ``configs/vehicle_damage.yaml`` works from a checkout and from an installed wheel alike.
    """
    path = Path(path)
    if path.exists() or path.is_absolute():
        return path
    from importlib.resources import files

    packaged = files("configs") / path.name
    return Path(str(packaged)) if packaged.is_file() else path


def load_config(path: str | Path) -> DomainConfig:
    """Read and validate a domain YAML file (see :func:`resolve_config_path`).

    Raises:
        ConfigError: If the file is missing, is not YAML, or does not validate.
    """
    path = resolve_config_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"Cannot read config {path}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    return parse_config(data or {}, str(path))


def apply_overrides(config: DomainConfig, overrides: dict[str, Any]) -> DomainConfig:
    """Return a copy of ``config`` with dotted-path overrides applied and re-validated.

    Args:
        config: The configuration to start from.
        overrides: e.g. ``{"dataset.root": "/data/cars", "embedder.model": "/models/dino"}``;
            None values are ignored, so unset command-line flags can be passed straight in.

    Raises:
        ConfigError: If a path names no field or a value does not validate.
    """
    data = config.model_dump(mode="json")
    for dotted, value in overrides.items():
        if value is None:
            continue
        node = data
        parts = dotted.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"override '{dotted}': '{part}' is not a section")
            node = node[part]
        node[parts[-1]] = str(value) if isinstance(value, Path) else value
    return parse_config(data, "command-line overrides")
