"""The CLI configuration the engine writes for its own terraform subprocesses.

The environment may point ``TF_CLI_CONFIG_FILE`` anywhere (even at a file that does not exist);
the engine never reads or changes the user's: it writes its own under the state dir and sets
``TF_CLI_CONFIG_FILE`` only in the environment of the commands it runs. With a provider mirror
(setting ``terraform_plugin_mirror`` / ``BRANCHENV_TERRAFORM_PLUGIN_MIRROR``) providers come only
from that directory (no direct installs: offline machines work, nothing is downloaded); always,
a plugin cache shared by every stack makes a second stack's ``init`` near-instant.
"""

from __future__ import annotations

import json
from pathlib import Path

from branchenv.errors import ConfigError

MIRROR_HOST_DIR = "registry.terraform.io"
"""A filesystem mirror holds one directory per provider host; this one must be there."""

MIRROR_SETTING = "terraform_plugin_mirror"
MIRROR_ENV = "BRANCHENV_TERRAFORM_PLUGIN_MIRROR"


def resolve_mirror(value: str | Path | None, *, base: Path) -> Path | None:
    """The mirror directory named by the setting (relative to ``base``), or None when unset.

    Accepts the mirror root (holding ``registry.terraform.io/``) or that host directory itself;
    anything else is a ConfigError naming the setting and what the directory must hold."""
    if value is None or str(value).strip() == "":
        return None
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = base / path
    path = path.resolve()
    if path.name == MIRROR_HOST_DIR and path.is_dir():
        return path.parent
    if (path / MIRROR_HOST_DIR).is_dir():
        return path
    raise ConfigError(
        f"{MIRROR_SETTING} = {str(value)!r}: {path} is not a provider filesystem mirror (it must "
        f"contain a {MIRROR_HOST_DIR}/ directory, e.g. {MIRROR_HOST_DIR}/hashicorp/aws/...); "
        f"fix the setting or {MIRROR_ENV}, or unset it to install providers from the registry"
    )


def render_cli_config(*, mirror: Path | None, plugin_cache: Path) -> str:
    """The CLI configuration text (HCL; JSON string literals are valid HCL strings)."""
    lines = [
        f"plugin_cache_dir = {json.dumps(str(plugin_cache))}",
        # A lock file from the user's module may list registry hashes only; the cache must not
        # make init refuse a provider whose mirror package hashes differently.
        "plugin_cache_may_break_dependency_lock_file = true",
        "disable_checkpoint = true",
    ]
    if mirror is not None:
        lines += [
            "provider_installation {",
            "  filesystem_mirror {",
            f"    path = {json.dumps(str(mirror))}",
            '    include = ["*/*/*"]',
            "  }",
            "  # No direct block: nothing is ever downloaded when a mirror is configured.",
            "}",
        ]
    return "\n".join(lines) + "\n"


def write_cli_config(path: Path, *, mirror: Path | None, plugin_cache: Path) -> Path:
    """Write the CLI config to ``path`` (atomically, only when it changed) and create the
    plugin cache; returns ``path`` for ``TF_CLI_CONFIG_FILE``."""
    plugin_cache.mkdir(parents=True, exist_ok=True)
    text = render_cli_config(mirror=mirror, plugin_cache=plugin_cache)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if path.read_text() == text:
            return path
    except OSError:
        pass
    tmp = path.with_name(f".{path.name}.{id(text)}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path
