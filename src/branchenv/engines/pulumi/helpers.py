"""Pure helpers of the pulumi engine (tested from tables in tests/unit, no CLI)."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from typing import Any

from branchenv.engines.base import is_secret_envelope
from branchenv.engines.pulumi.backend import LockHolder, parse_time
from branchenv.errors import ConfigError

REDACTED = "[redacted]"

STRUCTURED_CONFIG_KEYS = frozenset({"aws:endpoints", "aws:defaultTags"})
"""Provider config whose schema type is a list or object: written into the stack file as YAML
lists and maps, so the provider receives a list or map, not a JSON string."""

SECRET_CONFIG_KEYS = frozenset({"aws:secretKey", "aws:token"})
"""Config stored encrypted (``--secret``)."""

MIN_DIY_TAGS_VERSION = (3, 211, 0)
"""The first CLI whose DIY backends keep stack tags (pulumi/pulumi#19882, v3.211.0)."""

_LOCK_LINE = re.compile(
    r"^\s*(?P<where>\S+): created by (?P<user>[^@\s]*)@(?P<host>\S*) \(pid (?P<pid>-?\d+)\) "
    r"at (?P<at>\S+)\s*$"
)
_STDERR_MARK = "\n stderr: "
_STDOUT_MARK = "\n stdout: "
_ERROR_TAIL_LINES = 6
_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")


def structured_config(config: Mapping[str, str]) -> dict[str, Any]:
    """Config values as the stack file holds them: :data:`STRUCTURED_CONFIG_KEYS` parsed from
    their JSON text into lists and maps (what the provider's schema types them as), every
    other value the string it is."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if key in STRUCTURED_CONFIG_KEYS:
            try:
                out[key] = json.loads(value)
            except ValueError as exc:
                raise ConfigError(f"config {key} must be JSON (a list or object): {exc}") from exc
        else:
            out[key] = value
    return out


def scrub(text: str, secret_values: tuple[str, ...]) -> str:
    """``text`` with every secret value replaced by ``[redacted]``."""
    for value in sorted(secret_values, key=len, reverse=True):
        if value:
            text = text.replace(value, REDACTED)
    return text


def stderr_tail(error_text: str, lines: int = _ERROR_TAIL_LINES) -> str:
    """The gist of a ``CommandError`` message on one line: the ``error:`` lines of stdout (where
    ``pulumi up`` prints its diagnostics) followed by the last lines of stderr."""
    head, _, stderr = error_text.rpartition(_STDERR_MARK)
    _, _, stdout = head.partition(_STDOUT_MARK)
    diagnostics = [
        line.strip() for line in stdout.splitlines() if line.strip().lower().startswith("error:")
    ]
    kept = diagnostics[-3:]
    for line in [line.strip() for line in stderr.splitlines() if line.strip()][-lines:]:
        if line not in kept:
            kept.append(line)
    return " | ".join(kept) if kept else "(no error output)"


def parse_lock_holders(error_text: str) -> list[LockHolder]:
    """The lock lines of a "the stack is currently locked by N lock(s)" error (lock.go)."""
    holders = []
    for line in error_text.splitlines():
        match = _LOCK_LINE.match(line)
        if match:
            holders.append(
                LockHolder(
                    where=match["where"],
                    user=match["user"],
                    host=match["host"],
                    pid=int(match["pid"]),
                    created_at=parse_time(match["at"]),
                )
            )
    return holders


def newest_lock_age(holders: list[LockHolder], now: dt.datetime) -> float | None:
    """Seconds since the newest lock was taken (None when no lock has a known time)."""
    times = [h.created_at for h in holders if h.created_at is not None]
    if not times:
        return None
    return (now - max(times)).total_seconds()


def parse_version(text: str) -> tuple[int, int, int] | None:
    """``(major, minor, patch)`` of a ``pulumi version`` answer (``v3.211.0``)."""
    match = _VERSION.search(text)
    if not match:
        return None
    return (int(match[1]), int(match[2]), int(match[3]))


def is_user_resource(type_: str) -> bool:
    """True for the program's resources (not the root Stack, not providers)."""
    return type_ != "pulumi:pulumi:Stack" and not type_.startswith("pulumi:providers:")


def drop_secrets(value: Any) -> Any:
    """``value`` with every secret envelope replaced by ``[redacted]``."""
    if isinstance(value, dict):
        if is_secret_envelope(value):
            return REDACTED
        return {k: drop_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [drop_secrets(v) for v in value]
    return value


_OPS = {
    "create": "create",
    "update": "update",
    "delete": "delete",
    "same": "same",
    "read": "read",
    "replace": "replace",
    "create-replacement": "replace",
    "delete-replaced": "replace",
    "read-replacement": "read",
    "import": "create",
    "import-replacement": "replace",
    "refresh": "same",
    "discard": "delete",
    "discard-replaced": "replace",
    "remove-pending-replace": "same",
}


def plain_op(op: Any) -> str:
    """An engine step op (OpType or text) as one of create, update, replace, delete, same,
    read: a replacement's three steps (create-replacement, replace, delete-replaced) are one
    replace."""
    text = str(getattr(op, "value", op))
    return _OPS.get(text, text)


def format_time(moment: dt.datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
