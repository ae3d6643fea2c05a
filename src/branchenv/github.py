"""GitHub Actions hand-offs: step outputs (``$GITHUB_OUTPUT``) and the job summary
(``$GITHUB_STEP_SUMMARY``), written only when the runner sets those variables.

The ``name=value`` / heredoc encoding is :func:`format_outputs`: a value holding a line break is
written as ``name<<DELIM`` ... ``DELIM`` with a random delimiter, the multiline form GitHub
documents. This module is the one place that writes either file.

``branchenv up`` hands its results on with :func:`publish_up`; ``branchenv ci`` does the same
through the harness (:func:`branchenv.harness.reports.publish_github`).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from branchenv.errors import OperationFailed

if TYPE_CHECKING:
    from branchenv.provision import UpOutcome

OUTPUT_VAR = "GITHUB_OUTPUT"
SUMMARY_VAR = "GITHUB_STEP_SUMMARY"


def _append(variable: str, text: str, env: Mapping[str, str]) -> Path | None:
    raw = env.get(variable)
    if not raw:
        return None
    path = Path(raw)
    try:
        with path.open("a", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        raise OperationFailed(
            f"cannot append to ${variable} ({path}): {exc.strerror or exc}; unset {variable} "
            "outside GitHub Actions, or check the runner's file permissions"
        ) from None
    return path


def format_outputs(values: Mapping[str, Any]) -> str:
    """``$GITHUB_OUTPUT`` lines for ``values``: ``key=value``, or the heredoc form
    ``key<<DELIM`` ... ``DELIM`` for a value with a line break (multiline-safe)."""
    out: list[str] = []
    for key, raw in values.items():
        if not key or any(ch in key for ch in "=\r\n") or key.startswith("<"):
            raise ValueError(f"invalid GitHub output name {key!r}")
        value = "" if raw is None else str(raw)
        if "\n" in value or "\r" in value:
            delimiter = f"ghadelimiter_{uuid.uuid4().hex}"
            while delimiter in value:  # pragma: no cover - 128 random bits
                delimiter = f"ghadelimiter_{uuid.uuid4().hex}"
            out.append(f"{key}<<{delimiter}\n{value}\n{delimiter}\n")
        else:
            out.append(f"{key}={value}\n")
    return "".join(out)


def write_outputs(values: Mapping[str, str], *, env: Mapping[str, str] = os.environ) -> Path | None:
    """Append ``values`` as step outputs to the file ``$GITHUB_OUTPUT`` names.

    Returns the file written, or ``None`` when ``GITHUB_OUTPUT`` is unset (not on Actions).
    Raises ``ValueError`` for a name GitHub cannot take (empty, or holding ``=`` or a line
    break), before anything is written.
    """
    text = format_outputs(values)  # validates every name first: all or nothing
    return _append(OUTPUT_VAR, text, env)


def append_summary(markdown: str, *, env: Mapping[str, str] = os.environ) -> Path | None:
    """Append ``markdown`` to the job summary (``$GITHUB_STEP_SUMMARY``), ending it with a
    newline so the next step's summary starts on its own line. ``None`` when unset."""
    text = markdown if markdown.endswith("\n") else markdown + "\n"
    return _append(SUMMARY_VAR, text, env)


def up_summary(outcome: UpOutcome) -> str:
    """The Markdown job summary of one ``branchenv up``: stack, branch, endpoint, expiry."""
    endpoint = outcome.outputs.get("endpoint")
    lines = [
        f"## branchenv up: `{outcome.stack}`",
        "",
        "| | |",
        "| --- | --- |",
        f"| branch | `{outcome.branch}` |",
        f"| target / engine | {outcome.target} / {outcome.engine} |",
        f"| resources | {outcome.resource_count} |",
        f"| expires at | {outcome.metadata.expires_at.isoformat()} |",
    ]
    if isinstance(endpoint, str) and endpoint:
        lines.append(f"| endpoint | <{endpoint}> |")
    return "\n".join(lines) + "\n"


def publish_up(outcome: UpOutcome, *, env: Mapping[str, str] = os.environ) -> tuple[Path, ...]:
    """What ``branchenv up`` hands to GitHub Actions: outputs ``stack``, ``branch`` and
    ``endpoint`` (empty when the program has none), and :func:`up_summary`. Returns the files
    written (none outside Actions)."""
    endpoint = outcome.outputs.get("endpoint")
    values = {
        "stack": outcome.stack,
        "branch": outcome.branch,
        "endpoint": endpoint if isinstance(endpoint, str) else "",
    }
    written = [write_outputs(values, env=env), append_summary(up_summary(outcome), env=env)]
    return tuple(p for p in written if p is not None)
