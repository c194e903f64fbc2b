"""Domain configuration: one YAML file describes a whole domain.

The file names the dataset and its format, the label taxonomy, the region strategy, the
embedder and the index (:mod:`index.config.models`). It is validated by pydantic: every
field carries a description, unknown keys are errors that name the key, ``${VAR}`` /
``${VAR:-default}`` in any string is replaced from the environment, and command-line flags
override fields through :func:`apply_overrides` (:mod:`index.config.loading`). Relative paths
are relative to the working directory.
"""

from index.config.loading import (
    ConfigError,
    apply_overrides,
    load_config,
    parse_config,
    resolve_config_path,
)
from index.config.models import (
    DEFAULT_CONFIG,
    MODES,
    AgentConfig,
    DatasetConfig,
    DomainConfig,
    FieldPattern,
    Mode,
    ModelConfig,
    NodeKind,
    RegionStrategy,
    VehicleGrouping,
)

__all__ = [
    "DEFAULT_CONFIG",
    "MODES",
    "AgentConfig",
    "ConfigError",
    "DatasetConfig",
    "DomainConfig",
    "FieldPattern",
    "Mode",
    "ModelConfig",
    "NodeKind",
    "RegionStrategy",
    "VehicleGrouping",
    "apply_overrides",
    "load_config",
    "parse_config",
    "resolve_config_path",
]
