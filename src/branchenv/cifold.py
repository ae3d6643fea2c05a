"""CI log folding and annotations: GitHub Actions workflow commands and GitLab collapsible
sections. This module is the one place that writes either.

On GitHub Actions (``GITHUB_ACTIONS=true``) each phase of a run is a ``::group::`` /
``::endgroup::`` fold, a failed test or a failed or refused command is an ``::error::``
annotation (with ``file`` and ``line`` when known) and the end of ``ci`` / ``test`` / ``up`` is a
``::notice::`` with the stack's endpoints and its cost. On GitLab CI (``GITLAB_CI=true``) each
phase is a collapsible section; GitLab has no annotations. Anywhere else, or with
``BRANCHENV_CI_ANNOTATIONS=0``, nothing is written.

The formats, as the runners document them:

- GitHub: ``::command key=value,key=value::message``. In the message ``%``, CR and LF are
  written ``%25``, ``%0D`` and ``%0A`` (:func:`escape_data`); a property value also escapes
  ``:`` and ``,`` (``%3A``, ``%2C``: :func:`escape_property`), since those delimit the
  properties. The runner reads workflow commands from stdout and stderr alike: they go to stdout,
  or to stderr when ``--json`` keeps stdout for the one JSON document. GitHub shows at most 10
  error annotations per step, so a run writes at most :data:`MAX_ERRORS`, the last one saying
  how many more failed.
- GitLab: ``ESC[0Ksection_start:<unix time>:<name>[collapsed=true]\\rESC[0K<header>`` ...
  ``ESC[0Ksection_end:<unix time>:<name>\\rESC[0K``, a section name being ``[A-Za-z0-9_.-]+``.

The formatting functions are pure; :class:`Annotator` is what a command holds for its run.
"""

from __future__ import annotations

import contextlib
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from branchenv.errors import ConfigError

if TYPE_CHECKING:
    from branchenv.harness.reports import CaseResult

GITHUB = "github"
GITLAB = "gitlab"
SWITCH_VAR = "BRANCHENV_CI_ANNOTATIONS"
MAX_ERRORS = 10
"""Error annotations one run writes: GitHub shows 10 per step and drops the rest."""

_SECTION_BAD = re.compile(r"[^A-Za-z0-9_.-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_ESC = "\x1b[0K"


# --- GitHub workflow commands ---------------------------------------------------------------


def escape_data(text: str) -> str:
    """A workflow command's message as the runner reads it back: ``%``, CR, LF escaped."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value: :func:`escape_data` plus ``:`` and ``,``."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def workflow_command(
    command: str, message: str = "", properties: Mapping[str, str | int | None] | None = None
) -> str:
    """One workflow command line (no newline): ``::command k=v,k=v::message``; properties
    whose value is None are left out."""
    if not re.fullmatch(r"[a-z][a-z-]*", command):
        raise ValueError(f"invalid workflow command {command!r}")
    props = []
    for key, value in (properties or {}).items():
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", key):
            raise ValueError(f"invalid workflow command property {key!r}")
        if value is not None:
            props.append(f"{key}={escape_property(str(value))}")
    head = f"{command} {','.join(props)}" if props else command
    return f"::{head}::{escape_data(message)}"


def github_error(
    message: str, *, title: str | None = None, file: str | None = None, line: int | None = None
) -> str:
    """An ``::error`` annotation (``line`` only counts with a ``file``)."""
    return workflow_command(
        "error",
        message,
        {"title": title, "file": file, "line": line if file is not None else None},
    )


def github_notice(message: str, *, title: str | None = None) -> str:
    return workflow_command("notice", message, {"title": title})


def github_group(title: str) -> str:
    return workflow_command("group", title)


def github_endgroup() -> str:
    return workflow_command("endgroup")


# --- GitLab collapsible sections ------------------------------------------------------------


def section_name(text: str) -> str:
    """``text`` as a GitLab section name: runs of anything but ``[A-Za-z0-9_.-]`` become
    ``_`` (never empty)."""
    return _SECTION_BAD.sub("_", text).strip("_") or "section"


def _header(text: str) -> str:
    return _CONTROL.sub(" ", text).strip()


def gitlab_section_start(name: str, header: str, *, ts: int, collapsed: bool = True) -> str:
    """The marker that opens section ``name`` (made valid) at unix time ``ts``, showing
    ``header`` (control characters become spaces)."""
    options = "[collapsed=true]" if collapsed else ""
    return f"{_ESC}section_start:{ts}:{section_name(name)}{options}\r{_ESC}{_header(header)}"


def gitlab_section_end(name: str, *, ts: int) -> str:
    return f"{_ESC}section_end:{ts}:{section_name(name)}\r{_ESC}"


# --- which CI, and whether to annotate ------------------------------------------------------

_ON = ("1", "true", "yes", "on")
_OFF = ("0", "false", "no", "off")


def detect(env: Mapping[str, str]) -> str | None:
    """:data:`GITHUB`, :data:`GITLAB` or None (not on a CI, or ``BRANCHENV_CI_ANNOTATIONS`` is
    off). Raises :class:`ConfigError` for a value of that variable that is neither."""
    switch = env.get(SWITCH_VAR, "").strip().lower()
    if switch and switch not in _ON + _OFF:
        raise ConfigError(
            f"env {SWITCH_VAR}={env[SWITCH_VAR]!r}: expected 0 or 1 (also false/true, no/yes, "
            "off/on)",
            hint=f"set {SWITCH_VAR}=0 to turn CI annotations off, or unset it",
        )
    if switch in _OFF:
        return None
    if env.get("GITHUB_ACTIONS", "").lower() == "true":
        return GITHUB
    if env.get("GITLAB_CI", "").lower() == "true":
        return GITLAB
    return None


def relative_file(path: str, *, base: Path, workspace: str | None) -> str:
    """A file named as pytest names it (relative to ``base``, its working directory) as GitHub
    wants it: relative to the workspace (``GITHUB_WORKSPACE``) when under it, else as given."""
    if not workspace:
        return path
    full = (base / path).resolve()
    try:
        return full.relative_to(Path(workspace).resolve()).as_posix()
    except ValueError:
        return path


def failure_title(case: CaseResult) -> str:
    return f"{case.id} {case.outcome}"


class Annotator:
    """What one command writes for its CI: folds per phase, error annotations, a notice.

    ``ci`` is :data:`GITHUB`, :data:`GITLAB` or None (then every method does nothing);
    ``to_stderr`` sends everything to stderr (``--json``: stdout is the JSON document's).
    The other stream is flushed before each line, so a fold opens and closes around the lines
    it folds."""

    def __init__(
        self,
        ci: str | None,
        *,
        to_stderr: bool = False,
        clock: Callable[[], float] = time.time,
        max_errors: int = MAX_ERRORS,
    ) -> None:
        self.ci = ci
        self.to_stderr = to_stderr
        self.clock = clock
        self.max_errors = max_errors
        self.errors = 0
        self._open: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, to_stderr: bool = False) -> Annotator:
        return cls(detect(env), to_stderr=to_stderr)

    @classmethod
    def off(cls) -> Annotator:
        return cls(None)

    @property
    def github(self) -> bool:
        return self.ci == GITHUB

    def _write(self, line: str) -> None:
        out, other = (sys.stderr, sys.stdout) if self.to_stderr else (sys.stdout, sys.stderr)
        other.flush()
        out.write(line + "\n")
        out.flush()

    @contextlib.contextmanager
    def phase(self, name: str, title: str) -> Iterator[None]:
        """Fold what the phase ``name`` prints under ``title``. Folds never nest (GitHub's
        do not): a phase inside an open one is not folded on its own."""
        if self.ci is None or self._open is not None:
            yield
            return
        self._open = name
        ts = int(self.clock())
        self._write(
            github_group(title) if self.github else gitlab_section_start(name, title, ts=ts)
        )
        try:
            yield
        finally:
            self._open = None
            self._write(
                github_endgroup() if self.github else gitlab_section_end(name, ts=int(self.clock()))
            )

    def error(
        self,
        message: str,
        *,
        title: str | None = None,
        file: str | None = None,
        line: int | None = None,
    ) -> bool:
        """One ``::error`` annotation on GitHub, within :attr:`max_errors`; whether written."""
        if not self.github or self.errors >= self.max_errors:
            return False
        self.errors += 1
        self._write(github_error(message, title=title, file=file, line=line))
        return True

    def notice(self, message: str, *, title: str | None = None) -> None:
        if self.github:
            self._write(github_notice(message, title=title))

    def failed_tests(
        self, cases: Sequence[CaseResult], *, base: Path, workspace: str | None = None
    ) -> int:
        """One error per failed or erroring test (``file``/``line`` as JUnit gives them, made
        relative to ``workspace``); when they would pass :attr:`max_errors`, the last one
        written says how many more there are. Returns how many tests were annotated."""
        if not self.github:
            return 0
        room = self.max_errors - self.errors
        shown = list(cases) if len(cases) <= room else list(cases[: max(room - 1, 0)])
        for case in shown:
            file = case.file and relative_file(case.file, base=base, workspace=workspace)
            self.error(
                case.message or case.outcome,
                title=failure_title(case),
                file=file or None,
                line=case.line,
            )
        rest = len(cases) - len(shown)
        if rest:
            self.error(
                f"and {rest} more failed test{'' if rest == 1 else 's'}: see the JUnit report "
                "and the job summary",
                title="more failed tests",
            )
        return len(shown)


def endpoints(outputs: Mapping[str, object]) -> list[tuple[str, str]]:
    """The stack's endpoints worth a notice, ``(output name, URL)``: ``endpoint`` first, then
    the ``*_endpoint`` and ``*_url`` outputs holding an http(s) URL, user info redacted. A
    secret output is never one (engines mask its value: it is no URL)."""
    from branchenv.config import redact_url

    found = []
    for key in sorted(outputs, key=lambda k: (k != "endpoint", k)):
        value = outputs[key]
        if not isinstance(value, str) or not value.startswith(("http://", "https://")):
            continue
        if key == "endpoint" or key.endswith(("_endpoint", "_url")):
            found.append((key, redact_url(value)))
    return found


def notice_text(stack: str, urls: Iterable[tuple[str, str]], cost: str | None) -> str:
    """The end-of-run notice: the stack, its endpoints (one a line) and the cost line."""
    lines = [f"stack {stack}"]
    lines += [f"{name}: {url}" for name, url in urls]
    lines.append(f"cost: {cost}" if cost else "cost: not estimated")
    return "\n".join(lines)
