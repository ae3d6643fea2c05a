"""Project settings: where they come from, what they may hold, and the one place that reads them.

Sources, lowest to highest precedence:

1. built-in defaults;
2. ``[tool.branchenv]`` in the project's ``pyproject.toml``;
3. ``branchenv.toml`` in the project directory (top-level table, same keys);
4. environment variables ``BRANCHENV_<KEY>`` (``BRANCHENV_REGION``; list values comma-separated;
   an empty value means "unset" for settings that may be unset);
5. explicit overrides from the CLI (flags); an override whose value is ``None`` is ignored.

The project directory is the first directory, walking up from the working directory, that holds
``branchenv.toml``, a ``pyproject.toml`` with a ``[tool.branchenv]`` table, ``Pulumi.yaml`` or
``.git``; failing that, the working directory itself.

Every value is checked where it is read, so a bad one is reported as one line naming the file
(or environment variable, or flag), the key and the fix, raised as :class:`ConfigError`.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from branchenv.errors import ConfigError, UsageError

PYPROJECT = "pyproject.toml"
CONFIG_FILE = "branchenv.toml"
ENV_PREFIX = "BRANCHENV_"

SOURCE_DEFAULT = "default"
SOURCE_PYPROJECT = "pyproject.toml [tool.branchenv]"
SOURCE_CONFIG_FILE = "branchenv.toml"

TARGETS = ("local", "aws")

_REGION_RE = re.compile(r"^[a-z]{2}(?:-(?:gov|iso[a-z]?))?-[a-z]+-[0-9]{1,2}$")
_ACCOUNT_RE = re.compile(r"^[0-9]{12}$")
# AWS tag keys: Unicode letters, digits, white space and _ . : / = + - @ (at most 128 characters).
_TAG_KEY_RE = re.compile(r"^[\w .:/=+\-@]+$")
_URL_SCHEME_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.\-]*://")
_URL_USERINFO_RE = re.compile(r"(://)[^/@]*@")
_MAX_TAG_PREFIX = 64


@dataclasses.dataclass(frozen=True)
class ProgramSetting:
    """One ``[tool.branchenv.programs.<name>]`` table: a program beside the default one.

    ``path`` is its directory relative to the project dir; ``engine`` the engine it asks for;
    ``project`` its project name when its kind has none; ``templates`` maps a target name to
    that target's stack config template file (relative to the project dir)."""

    name: str
    path: str
    engine: str | None = None
    project: str | None = None
    templates: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        extra = [f"engine {self.engine}"] if self.engine else []
        extra += [f"project {self.project}"] if self.project else []
        extra += [f"{t} template {f}" for t, f in self.templates]
        return f"{self.name}: {self.path}" + (f" ({', '.join(extra)})" if extra else "")


@dataclasses.dataclass(frozen=True)
class Settings:
    """The settings of one project, each with the source its value came from (``sources``)."""

    project_dir: Path
    program: str | None = None
    """The program's directory, relative to the project dir; None: the project dir itself
    (its Pulumi.yaml, ``main:`` honoured, or its ``*.tf`` files)."""
    programs: tuple[ProgramSetting, ...] = ()
    """More programs beside the default one: ``[tool.branchenv.programs.<name>]`` tables."""
    project: str | None = None
    """The default program's project name when its kind has none of its own (a Terraform
    module: else the directory's name)."""
    default_ttl: str = "24h"
    max_ttl: str = "30d"
    """The longest TTL a stack may be given (``--ttl``, ``default_ttl``); with ``max_age`` set,
    a TTL is capped by that too (the reaper takes a stack at its max age whatever its TTL)."""
    tag_prefix: str = "branchenv:"
    protected_patterns: tuple[str, ...] = ("prod*", "production*", "staging*", "main", "master")
    backend_url: str | None = None
    default_target: str = "local"
    engine: str | None = None
    region: str = "us-east-1"
    allowed_account_ids: tuple[str, ...] = ()
    state_dir: str = ".branchenv"
    idle_after: str | None = None
    max_age: str | None = None
    max_reap: int = 25
    reap_concurrency: int = 4
    max_hourly: Decimal | None = None
    max_total: Decimal | None = None
    latency_p95_ms: int = 500
    terraform_binary: str = "terraform"
    terraform_plugin_mirror: str | None = None
    terraform_backend: str = "s3"
    terraform_state_bucket: str | None = None
    terraform_state_prefix: str = "branchenv"
    terraform_lock_table: str | None = None
    suite: str | None = None
    """The integration suite `test` and `ci` run (relative to the project); None:
    ``<program>/tests``."""
    pool_size: dict[str, int] = dataclasses.field(default_factory=dict)
    """Warm-pool stacks per target (``pool_size = 2`` for every target, or a table
    ``{local = 2, aws = 1}``); see docs/pool.md."""
    pool: bool = False
    """Whether `up` and `ci` claim a stack from the warm pool without ``--pool``."""
    pool_fallback: str = "fail"
    """What `up --pool` does when the pool is empty: ``fail`` (exit 1) or ``cold``."""
    pool_ttl: str = "7d"
    """How long a free pool stack lives (counted again from each release)."""
    pool_refill: str = "background"
    """A pool stack destroyed on release: ``background`` (a detached refill replaces it at
    once) or ``off`` (the next ``pool fill`` does)."""
    sources: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def state_path(self) -> Path:
        """Absolute path of the state directory (``state_dir`` under the project directory)."""
        return (self.project_dir / self.state_dir).resolve()

    @property
    def program_path(self) -> Path:
        """Absolute path of the directory the ``program`` setting names (the project dir when
        unset); the program's kind decides where it really runs (``main:``)."""
        return (self.project_dir / (self.program or ".")).resolve()

    @property
    def effective_backend_url(self) -> str:
        """``backend_url``, or the local file backend under the state directory when unset."""
        if self.backend_url is not None:
            return self.backend_url
        return (self.state_path / "pulumi").as_uri()

    def pool_size_for(self, target: str) -> int:
        """The warm pool's size on ``target`` (0: no pool)."""
        return self.pool_size.get(target, self.pool_size.get("*", 0))

    def values(self) -> dict[str, Any]:
        """Every setting's value by name, in declaration order (no ``project_dir``/``sources``)."""
        return {name: getattr(self, name) for name in SETTING_NAMES}


SETTING_NAMES: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(Settings) if f.name not in {"project_dir", "sources"}
)


@dataclasses.dataclass(frozen=True)
class SettingEntry:
    """One row of ``branchenv config show``: a setting, its value and where the value came from."""

    key: str
    value: Any
    source: str


def describe(settings: Settings) -> tuple[SettingEntry, ...]:
    """Each setting with its value (secrets in URLs redacted) and source, in a stable order."""
    entries = []
    for name in SETTING_NAMES:
        value = getattr(settings, name)
        if isinstance(value, str) and name == "backend_url":
            value = redact_url(value)
        entries.append(SettingEntry(name, value, settings.sources.get(name, SOURCE_DEFAULT)))
    return tuple(entries)


def redact_url(url: str) -> str:
    """Hide the user-info part of a URL (``scheme://user:secret@host`` -> ``scheme://***@host``)."""
    return _URL_USERINFO_RE.sub(r"\1***@", url)


# --- checking values -----------------------------------------------------------------------


class _Invalid(Exception):
    """A value that does not fit its setting; ``str()`` says why and how to fix it."""


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"expected a string, got {_type_name(value)}; quote the value")
    return value


def _type_name(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def _nonempty_str(value: object) -> str:
    text = _str(value).strip()
    if not text:
        raise _Invalid("it is empty; give a value or remove the key")
    return text


def _ttl(value: object) -> str:
    text = _nonempty_str(value)
    from branchenv.metadata import parse_ttl

    try:
        parse_ttl(text, flag=None)  # the value came from a setting, named by the caller
    except UsageError as exc:
        raise _Invalid(str(exc)) from exc
    return text


def _optional(check: Callable[[object], Any]) -> Callable[[object], Any]:
    def checked(value: object) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        return check(value)

    return checked


def _str_list(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        raise _Invalid('expected a list of strings; write it as ["a", "b"]')
    if not isinstance(value, list | tuple):
        raise _Invalid(f'expected a list of strings, got {_type_name(value)}; write ["a", "b"]')
    items: list[str] = []
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise _Invalid(f"every item must be a non-empty string, got {item!r}")
        items.append(item.strip())
    return tuple(items)


def _protected_patterns(value: object) -> tuple[str, ...]:
    patterns = _str_list(value)
    if not patterns:
        raise _Invalid(
            "an empty list would disable every protection, which branchenv refuses; list the "
            'patterns to protect (the default: "prod*", "production*", "staging*", "main", '
            '"master") or remove the setting to use the default'
        )
    return patterns


def _account_ids(value: object) -> tuple[str, ...]:
    if isinstance(value, list | tuple) and any(isinstance(v, int) for v in value):
        raise _Invalid(
            'account ids must be quoted strings (leading zeros matter): ["012345678901"]'
        )
    ids = _str_list(value)
    for account in ids:
        if not _ACCOUNT_RE.match(account):
            raise _Invalid(f"{account!r} is not a 12-digit AWS account id")
    return ids


def _choice(choices: tuple[str, ...]) -> Callable[[object], str]:
    def checked(value: object) -> str:
        text = _nonempty_str(value).lower()
        if text not in choices:
            raise _Invalid(f"{text!r} is not one of: {', '.join(choices)}")
        return text

    return checked


def _engine(value: object) -> str | None:
    if value is None:
        return None
    text = _str(value).strip().lower()
    if text in {"", "auto"}:
        return None
    from branchenv.engines import engine_names

    names = engine_names()
    if text not in names:
        raise _Invalid(f"{text!r} is not one of: auto, {', '.join(names)}")
    return text


def _region(value: object) -> str:
    text = _nonempty_str(value)
    if not _REGION_RE.match(text):
        raise _Invalid(f"{text!r} is not an AWS region name; use a form like us-east-1")
    return text


def _tag_prefix(value: object) -> str:
    text = _str(value)
    if not text.endswith(":") or len(text) < 2:
        raise _Invalid(f"{text!r} must be a name ending with ':' such as 'branchenv:'")
    if text.lower().startswith("aws:"):
        raise _Invalid("tag keys starting with 'aws:' are reserved by AWS; pick another prefix")
    if len(text) > _MAX_TAG_PREFIX or not _TAG_KEY_RE.match(text):
        raise _Invalid(
            f"{text!r} is not a valid AWS tag key prefix; use at most {_MAX_TAG_PREFIX} "
            "letters, digits, spaces and _ . : / = + - @"
        )
    return text


def _backend_url(value: object) -> str:
    text = _nonempty_str(value)
    if not _URL_SCHEME_RE.match(text):
        raise _Invalid(
            "expected a URL such as file://~/.pulumi, s3://bucket or https://api.pulumi.com"
        )
    return text


def _int_at_least(minimum: int) -> Callable[[object], int]:
    def checked(value: object) -> int:
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise _Invalid(f"{value!r} is not a whole number") from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Invalid(f"expected a whole number, got {_type_name(value)}")
        if value < minimum:
            raise _Invalid(f"{value} is too small; use a whole number >= {minimum}")
        return value

    return checked


def _usd(value: object) -> Decimal:
    if isinstance(value, bool):
        raise _Invalid('expected an amount in USD such as "2.50", got a boolean')
    if isinstance(value, int | float | Decimal):
        value = str(value)
    text = _nonempty_str(value)
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise _Invalid(f'{text!r} is not an amount in USD such as "2.50"') from None
    if not amount.is_finite() or amount < 0:
        raise _Invalid(f"{text!r} must be a finite amount >= 0 in USD")
    return amount


_S3_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def _s3_bucket(value: object) -> str:
    text = _nonempty_str(value)
    if not _S3_BUCKET_RE.match(text):
        raise _Invalid(f"{text!r} is not an S3 bucket name (3-63 lowercase letters, digits, . -)")
    return text


def _bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("false", "0", "no", "off"):
        return False
    raise _Invalid(f"expected true or false, got {value!r}")


_MAX_POOL = 20


def _pool_sizes(value: object) -> dict[str, int]:
    """``2`` (every target), ``"2"``, ``{local = 2, aws = 1}`` or ``"local=2,aws=1"``."""
    count = _int_at_least(0)
    if isinstance(value, str) and "=" in value:
        pairs: dict[str, object] = {}
        for part in value.split(","):
            key, sep, number = part.partition("=")
            if not sep:
                raise _Invalid(f"{part.strip()!r} is not TARGET=N; write local=2,aws=1")
            pairs[key.strip()] = number.strip()
        value = pairs
    if isinstance(value, dict):
        sizes: dict[str, int] = {}
        for key, raw in value.items():
            if key not in TARGETS:
                raise _Invalid(f"{key!r} is not a target; use {' or '.join(TARGETS)}")
            sizes[key] = count(raw)
    else:
        sizes = {"*": count(value)}
    if any(n > _MAX_POOL for n in sizes.values()):
        raise _Invalid(f"at most {_MAX_POOL} stacks per pool")
    return sizes


def _relative_dir(value: object) -> str:
    return _nonempty_str(value)


_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
_PROGRAM_KEYS = ("path", "engine", "project", "templates")


def _project_name(value: object) -> str:
    text = _nonempty_str(value)
    if not _NAME_RE.match(text.lower()):
        raise _Invalid(f"{text!r} must be 1-40 letters, digits, '-' or '_' (a project name)")
    return text


def _programs(value: object) -> tuple[ProgramSetting, ...]:
    if not isinstance(value, dict):
        raise _Invalid(
            f"expected a table of programs, got {_type_name(value)}; write "
            '[tool.branchenv.programs.NAME] (or [programs.NAME] in branchenv.toml) with path = "..."'
        )
    out: list[ProgramSetting] = []
    for name, table in value.items():
        where = f"programs.{name}"
        if not _NAME_RE.match(str(name)) or name == "default":
            raise _Invalid(
                f"program name {name!r} must be 1-40 lowercase letters, digits, '-' or '_', and "
                "not 'default' (the `program` setting is the default program)"
            )
        if not isinstance(table, dict):
            raise _Invalid(f'{where} must be a table with path = "..."')
        for key in table:
            if key not in _PROGRAM_KEYS:
                raise _Invalid(
                    f"{where}: unknown key {key!r}; valid keys: {', '.join(_PROGRAM_KEYS)}"
                )
        if "path" not in table:
            raise _Invalid(f"{where}.path is required: the program's directory in the project")
        try:
            path = _relative_dir(table["path"])
            engine = _engine(table.get("engine"))
            project = _project_name(table["project"]) if "project" in table else None
        except _Invalid as exc:
            raise _Invalid(f"{where}: {exc}") from None
        templates = table.get("templates", {})
        if not isinstance(templates, dict):
            raise _Invalid(f'{where}.templates must be a table of target = "file"')
        pairs: list[tuple[str, str]] = []
        for target, file in templates.items():
            if target not in TARGETS:
                raise _Invalid(
                    f"{where}.templates: unknown target {target!r}; use {', '.join(TARGETS)}"
                )
            if not isinstance(file, str) or not file.strip():
                raise _Invalid(f"{where}.templates.{target} must be a file path")
            pairs.append((target, file.strip()))
        out.append(ProgramSetting(str(name), path, engine, project, tuple(pairs)))
    return tuple(out)


_CHECKS: dict[str, Callable[[object], Any]] = {
    "program": _optional(_relative_dir),
    "programs": _programs,
    "project": _optional(_project_name),
    "default_ttl": _ttl,
    "max_ttl": _ttl,
    "tag_prefix": _tag_prefix,
    "protected_patterns": _protected_patterns,
    "backend_url": _optional(_backend_url),
    "default_target": _choice(TARGETS),
    "engine": _engine,
    "region": _region,
    "allowed_account_ids": _account_ids,
    "state_dir": _relative_dir,
    "idle_after": _optional(_ttl),
    "max_age": _optional(_ttl),
    "max_reap": _int_at_least(0),
    "reap_concurrency": _int_at_least(1),
    "max_hourly": _optional(_usd),
    "max_total": _optional(_usd),
    "latency_p95_ms": _int_at_least(1),
    # Read by the terraform engine (see docs/terraform.md); checked further where it runs.
    "terraform_binary": _choice(("terraform", "tofu")),
    "terraform_plugin_mirror": _optional(_nonempty_str),
    "terraform_backend": _choice(("s3", "local")),
    "terraform_state_bucket": _optional(_s3_bucket),
    "terraform_state_prefix": _nonempty_str,
    "terraform_lock_table": _optional(_nonempty_str),
    "suite": _optional(_relative_dir),
    "pool_size": _pool_sizes,
    "pool": _bool,
    "pool_fallback": _choice(("fail", "cold")),
    "pool_ttl": _ttl,
    "pool_refill": _choice(("background", "off")),
}
_LIST_KEYS = frozenset({"protected_patterns", "allowed_account_ids"})
assert set(_CHECKS) == set(SETTING_NAMES), "every setting needs a check"


def _check(key: str, raw: object, where: str, fix_hint: str) -> Any:
    try:
        return _CHECKS[key](raw)
    except _Invalid as exc:
        raise ConfigError(f"{where}: bad value for '{key}': {exc} ({fix_hint})") from None


def _unknown_key(key: str, where: str, fix_hint: str) -> ConfigError:
    close = difflib.get_close_matches(key, SETTING_NAMES, n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'?" if close else f"valid keys: {', '.join(SETTING_NAMES)}"
    return ConfigError(f"{where}: unknown key '{key}'; {hint} ({fix_hint})")


# --- reading sources -----------------------------------------------------------------------


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix the syntax of that file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
            "TOML files must be UTF-8: save it as UTF-8 or remove the bytes"
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot be read ({exc.strerror}); check its permissions"
        ) from None


def _pyproject_table(path: Path) -> dict[str, Any] | None:
    """The ``[tool.branchenv]`` table of a pyproject.toml, or None when it has none."""
    tool = _read_toml(path).get("tool")
    if not isinstance(tool, dict) or "branchenv" not in tool:
        return None
    table = tool["branchenv"]
    if not isinstance(table, dict):
        raise ConfigError(
            f"{path}: 'tool.branchenv' must be a table; write it as a [tool.branchenv] section"
        )
    return table


def find_project_dir(cwd: Path) -> Path:
    """The nearest directory at or above ``cwd`` that marks a branchenv project (see module doc)."""
    start = cwd.resolve()
    for directory in (start, *start.parents):
        if (directory / CONFIG_FILE).is_file():
            return directory
        pyproject = directory / PYPROJECT
        if pyproject.is_file() and _pyproject_table(pyproject) is not None:
            return directory
        if (directory / "Pulumi.yaml").is_file() or (directory / ".git").exists():
            return directory
    return start


def _apply_table(
    table: Mapping[str, Any],
    path: Path,
    label: str,
    where: str,
    values: dict[str, Any],
    sources: dict[str, str],
) -> None:
    for key, raw in table.items():
        if key not in _CHECKS:
            raise _unknown_key(key, where, f"fix it in {path.name}")
        values[key] = _check(key, raw, where, f"fix it in {path.name}")
        sources[key] = label


def _env_value(key: str, text: str) -> object:
    if key in _LIST_KEYS:
        return [part.strip() for part in text.split(",") if part.strip()]
    return text


def load_settings(
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
    flag_names: Mapping[str, str] | None = None,
) -> Settings:
    """Read the project's settings from every source, checking each value where it is read.

    ``overrides`` maps setting names to values given on the command line (``None`` values are
    ignored, so the CLI can pass every flag); ``flag_names`` maps a setting name to the flag
    that set it (``{"default_target": "--target"}``) for messages and sources, defaulting to
    ``--<key-with-dashes>``. Raises :class:`ConfigError` for a malformed file, an unknown key or
    a bad value.
    """
    project_dir = find_project_dir(cwd if cwd is not None else Path.cwd())
    environ = os.environ if env is None else env
    values: dict[str, Any] = {}
    sources: dict[str, str] = dict.fromkeys(SETTING_NAMES, SOURCE_DEFAULT)

    pyproject = project_dir / PYPROJECT
    if pyproject.is_file():
        table = _pyproject_table(pyproject)
        if table is not None:
            _apply_table(
                table, pyproject, SOURCE_PYPROJECT, f"{pyproject} [tool.branchenv]", values, sources
            )
    config_file = project_dir / CONFIG_FILE
    if config_file.is_file():
        _apply_table(
            _read_toml(config_file),
            config_file,
            SOURCE_CONFIG_FILE,
            str(config_file),
            values,
            sources,
        )

    _check_env_names(environ)
    for key in SETTING_NAMES:
        var = f"{ENV_PREFIX}{key.upper()}"
        if var in environ:
            where = f"env {var}"
            values[key] = _check(key, _env_value(key, environ[var]), where, f"fix or unset {var}")
            sources[key] = where

    names = flag_names or {}
    for key, raw in (overrides or {}).items():
        if raw is None:
            continue
        if key not in _CHECKS:
            raise ValueError(f"override for unknown setting {key!r}; valid: {SETTING_NAMES}")
        flag = names.get(key, "--" + key.replace("_", "-"))
        where = f"flag {flag}"
        values[key] = _check(key, raw, where, f"fix the value of {flag}")
        sources[key] = where

    settings = Settings(project_dir=project_dir, sources=sources, **values)
    check_state_dir(settings)
    _check_ttl_limits(settings)
    return settings


def _state_dir_setting(settings: Settings) -> str:
    """How the user names the state dir setting that is in force, for messages."""
    source = settings.sources.get("state_dir", SOURCE_DEFAULT)
    if source.startswith(("env ", "flag ")):
        return source.split(" ", 1)[1]
    if source == SOURCE_DEFAULT:
        return f"state_dir (default {settings.state_dir!r}; set BRANCHENV_STATE_DIR)"
    return f"'state_dir' in {source}"


def _bad_state_dir(settings: Settings, why: str) -> ConfigError:
    return ConfigError(
        f"{_state_dir_setting(settings)}: {settings.state_path} {why}; point it at a directory "
        "you can write (or one that can be created there)"
    )


def check_state_dir(settings: Settings) -> None:
    """Refuse a state dir that cannot be one, without creating anything: a file in the way,
    no write access, a read-only file system (what only trying can show is reported by
    :func:`ensure_state_dir`)."""
    path = settings.state_path
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        if existing == path:
            raise _bad_state_dir(settings, "is a file, not a directory")
        raise _bad_state_dir(settings, f"cannot be created: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise _bad_state_dir(settings, f"is not writable ({existing}: permission denied)")
    try:
        read_only = bool(os.statvfs(existing).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    if read_only:
        raise _bad_state_dir(settings, f"is on a read-only file system ({existing})")


def ensure_state_dir(settings: Settings) -> Path:
    """Create the state dir (the first thing a command that acts writes), turning a failure
    into one line naming the setting."""
    check_state_dir(settings)
    path = settings.state_path
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _bad_state_dir(settings, f"cannot be created ({exc.strerror})") from None
    return path


NON_SETTING_VARIABLES = frozenset(
    {
        "BRANCHENV_STACK_FILE",  # the stack file the pytest plugin reads
        "BRANCHENV_LOCAL_ENDPOINT",  # a placeholder in stack templates, never read from env
        "BRANCHENV_CI_ANNOTATIONS",  # 0: no CI folds or annotations (branchenv.cifold)
    }
)
"""``BRANCHENV_*`` names branchenv reads that are not settings."""


def _check_env_names(environ: Mapping[str, str]) -> None:
    """A ``BRANCHENV_*`` variable that is no setting but close to one is a typo: refuse it as a
    file's unknown key is refused. Others are left alone (a CI's own variables, such as the
    recipes' BRANCHENV_AWS_ROLE_ARN, share the prefix)."""
    known = {f"{ENV_PREFIX}{key.upper()}" for key in SETTING_NAMES} | NON_SETTING_VARIABLES
    for var in sorted(environ):
        if not var.startswith(ENV_PREFIX) or var in known:
            continue
        key = var[len(ENV_PREFIX) :].lower()
        close = difflib.get_close_matches(key, SETTING_NAMES, n=1, cutoff=0.8)
        if close:
            meant = f"{ENV_PREFIX}{close[0].upper()}"
            raise ConfigError(
                f"env {var}: no such setting; did you mean {meant}?",
                hint=f"rename it to {meant} (setting '{close[0]}'), or unset {var}",
            )
        others = {v[len(ENV_PREFIX) :].lower(): v for v in NON_SETTING_VARIABLES}
        near = difflib.get_close_matches(key, sorted(others), n=1, cutoff=0.8)
        if near:
            meant = others[near[0]]
            raise ConfigError(
                f"env {var}: branchenv reads no such variable; did you mean {meant}?",
                hint=f"rename it to {meant}, or unset {var}",
            )


def ttl_limit(settings: Settings) -> tuple[Any, str]:
    """The longest TTL allowed and the setting that sets it (``max_ttl``, or ``max_age`` when
    that is shorter: the reaper takes a stack at its max age whatever its TTL)."""
    from branchenv.metadata import parse_ttl

    limit, key = parse_ttl(settings.max_ttl, flag=None), "max_ttl"
    if settings.max_age is not None:
        age = parse_ttl(settings.max_age, flag=None)
        if age < limit:
            limit, key = age, "max_age"
    return limit, key


def _limit_source(settings: Settings, key: str) -> str:
    return settings.sources.get(key, SOURCE_DEFAULT)


def stack_ttl(settings: Settings, ttl: str | None, *, flag: str = "--ttl") -> Any:
    """The TTL a stack gets: ``ttl`` (from ``flag``) or ``default_ttl``, as a timedelta.

    An explicit TTL past the limit (:func:`ttl_limit`) is bad input naming the flag and the
    setting; ``default_ttl`` past ``max_age`` is capped at ``max_age`` (the stack would be
    reaped then anyway, and its expiry should say so); past ``max_ttl`` it was refused when
    the settings loaded."""
    from branchenv.metadata import MAX_TTL, format_duration, is_duration, parse_ttl

    limit, key = ttl_limit(settings)
    if ttl is None:
        return min(parse_ttl(settings.default_ttl, flag=None), limit)
    try:
        value = parse_ttl(ttl, flag=flag)
    except UsageError:
        # a duration past any date (parse_ttl's own bound) is past the limit too: say which
        if not is_duration(ttl):
            raise
        value = MAX_TTL + MAX_TTL
    if value > limit:
        raise UsageError(
            f"{flag} {ttl} is longer than {key} {format_duration(limit)} "
            f"(from {_limit_source(settings, key)})",
            hint=f"use a shorter {flag}, or raise {key} (e.g. BRANCHENV_{key.upper()})",
        )
    return value


def _check_ttl_limits(settings: Settings) -> None:
    from branchenv.metadata import format_duration, parse_ttl

    limit = parse_ttl(settings.max_ttl, flag=None)
    if parse_ttl(settings.default_ttl, flag=None) > limit:
        raise ConfigError(
            f"default_ttl {settings.default_ttl} (from {_limit_source(settings, 'default_ttl')}) "
            f"is longer than max_ttl {format_duration(limit)} "
            f"(from {_limit_source(settings, 'max_ttl')})",
            hint="shorten default_ttl or raise max_ttl",
        )
