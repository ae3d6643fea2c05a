"""The ``pulumi`` engine: the real Pulumi engine through ``pulumi.automation`` (LocalWorkspace).

Every call to the ``pulumi`` CLI goes through the automation library (which starts the binary in
one place, non-interactively); this module only chooses the stack, the environment and the
config, and translates automation's errors into branchenv's error tree at the boundary.

Backend: ``file://<state_dir>/pulumi`` unless ``backend_url`` says otherwise (``s3://…``,
``https://api.pulumi.com``). Passphrase: the ``passphrase`` argument, else
``PULUMI_CONFIG_PASSPHRASE`` / ``PULUMI_CONFIG_PASSPHRASE_FILE``, else — file backends only — one
generated once into ``<state_dir>/pulumi/.passphrase`` (mode 0600) and handed to the CLI by path.
The passphrase is scrubbed from every line of output and every error message.

Stack metadata lives in two places: stack tags (in the backend, so every machine sees them) and
the stack config key ``branchenv:tags`` (which the program also applies as AWS default tags).
Readers try the tags first and fall back to the config, for CLIs whose backend has no tags.

Locks: an update refused because another one holds the stack's lock (automation's
``ConcurrentUpdateError``) is retried with tenacity (attempts and a deadline). A lock older than
``lock_stale_after_s`` is cancelled once (``pulumi cancel``, which for a DIY backend deletes the
lock files) before the next attempt.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import secrets
import shutil
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from branchenv.engines.base import (
    SECRET_MASK,
    DestroyResult,
    EngineSettings,
    OutputSink,
    PlanCheck,
    PreviewResult,
    Program,
    ProgramInputs,
    RefreshResult,
    ResourceSummary,
    StackSummary,
    UpResult,
    is_secret_envelope,
    metadata_or_none,
)
from branchenv.engines.pulumi_program import provider_config, stack_config
from branchenv.errors import (
    ConfigError,
    EngineError,
    EngineUnavailable,
    StackLocked,
    StackNotFound,
    UsageError,
)

if TYPE_CHECKING:
    from pulumi import automation as auto

    from branchenv.metadata import StackMetadata
    from branchenv.targets import Target

T = TypeVar("T")

INSTALL_HINT = (
    "install the pulumi CLI (`curl -fsSL https://get.pulumi.com | sh`, then put ~/.pulumi/bin on "
    "PATH), or use `--engine inprocess` with `--target local`"
)
REDACTED = "[redacted]"
TAGS_CONFIG_KEY = "branchenv:tags"
"""Stack config key holding the JSON of the metadata tags (also the program's AWS default tags)."""

STRUCTURED_CONFIG_KEYS = frozenset({"aws:endpoints"})
"""Provider config whose schema type is a list or object: set as structured config (``--path``)
so the provider receives a list of maps, not a JSON string."""

SECRET_CONFIG_KEYS = frozenset({"aws:secretKey", "aws:token"})
"""Config stored encrypted (``--secret``)."""

_NO_TAGS_TEXT = "does not support stack tags"
_CONFIG_KEY_MISSING = re.compile(r"configuration key '.*' not found")
_LOCK_LINE = re.compile(
    r"^\s*(?P<where>\S+): created by (?P<user>[^@\s]*)@(?P<host>\S*) \(pid (?P<pid>-?\d+)\) "
    r"at (?P<at>\S+)\s*$"
)
_STDERR_MARK = "\n stderr: "
_STDOUT_MARK = "\n stdout: "
_ERROR_TAIL_LINES = 6
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# --- pure helpers (tested from tables in tests/unit) ------------------------------------------


def find_project_dir(program: Path) -> Path:
    """The directory holding the ``Pulumi.yaml`` that runs ``program``: ``program`` itself or the
    nearest parent with one."""
    start = program.resolve()
    for candidate in (start, *start.parents):
        if any((candidate / f"Pulumi{ext}").is_file() for ext in (".yaml", ".yml", ".json")):
            return candidate
    raise ConfigError(
        f"no Pulumi.yaml at or above {program}; pass the program directory with `--program DIR` "
        "(or set `program` under [tool.branchenv] in pyproject.toml)"
    )


def path_config(key: str, value: Any) -> dict[str, str]:
    """Flatten a JSON value into ``pulumi config set --path`` entries.

    ``path_config("aws:endpoints", [{"s3": "u"}])`` is ``{"aws:endpoints[0].s3": "u"}``. Map keys
    that are not identifiers use the quoted form (``["a.b"]``).
    """
    out: dict[str, str] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for name, child in node.items():
                part = f".{name}" if _IDENT.fullmatch(str(name)) else f'["{name}"]'
                walk(prefix + part, child)
        elif isinstance(node, list):
            for index, child in enumerate(node):
                walk(f"{prefix}[{index}]", child)
        elif isinstance(node, bool):
            out[prefix] = "true" if node else "false"
        elif node is None:
            out[prefix] = ""
        else:
            out[prefix] = str(node)

    walk(key, value)
    return out


def split_config(config: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Split config into flat entries and ``--path`` entries (for :data:`STRUCTURED_CONFIG_KEYS`)."""
    flat: dict[str, str] = {}
    paths: dict[str, str] = {}
    for key, value in config.items():
        if key in STRUCTURED_CONFIG_KEYS:
            try:
                parsed = json.loads(value)
            except ValueError as exc:
                raise ConfigError(f"config {key} must be JSON (a list or object): {exc}") from exc
            paths.update(path_config(key, parsed))
        else:
            flat[key] = value
    return flat, paths


def scrub(text: str, secret_values: tuple[str, ...]) -> str:
    """``text`` with every secret value replaced by ``[redacted]``."""
    for value in secret_values:
        if value:
            text = text.replace(value, REDACTED)
    return text


def redact_url(url: str) -> str:
    """A backend URL safe to show: user info and query strings dropped."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


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


@dataclass(frozen=True)
class LockHolder:
    """One lock on a stack, as the DIY backend reports it."""

    where: str
    user: str
    host: str
    pid: int
    created_at: dt.datetime | None

    def describe(self) -> str:
        at = self.created_at.isoformat() if self.created_at else "an unknown time"
        return f"{self.user}@{self.host} (pid {self.pid}) since {at}"


def _parse_time(text: str) -> dt.datetime | None:
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        # Go's RFC3339Nano may carry nanoseconds; Python takes at most microseconds.
        trimmed = re.sub(r"(\.\d{6})\d+", r"\1", text).replace("Z", "+00:00")
        try:
            moment = dt.datetime.fromisoformat(trimmed)
        except ValueError:
            return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def parse_lock_holders(error_text: str) -> list[LockHolder]:
    """The lock lines of a "the stack is currently locked by N lock(s)" error."""
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
                    created_at=_parse_time(match["at"]),
                )
            )
    return holders


def read_file_backend_locks(backend_root: Path, project: str, stack: str) -> list[LockHolder]:
    """Lock files of a stack in a ``file://`` backend (pulumi's DIY layout).

    Locks live at ``<root>/.pulumi/locks/organization/<project>/<stack>/<id>.json`` (project-scoped
    stacks) or ``<root>/.pulumi/locks/<stack>/<id>.json`` (legacy), each holding
    ``{"pid", "username", "hostname", "timestamp"}``.
    """
    locks_root = backend_root / ".pulumi" / "locks"
    holders = []
    for lock_dir in (locks_root / "organization" / project / stack, locks_root / stack):
        if not lock_dir.is_dir():
            continue
        for lock_file in sorted(lock_dir.glob("*.json")):
            try:
                content = json.loads(lock_file.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                content = {}
            created = _parse_time(str(content.get("timestamp", "")))
            if created is None:
                try:
                    created = dt.datetime.fromtimestamp(lock_file.stat().st_mtime, dt.UTC)
                except OSError:
                    created = None
            holders.append(
                LockHolder(
                    where=str(lock_file),
                    user=str(content.get("username", "?")),
                    host=str(content.get("hostname", "?")),
                    pid=int(content.get("pid", -1)),
                    created_at=created,
                )
            )
    return holders


def _holder_alive_here(holder: LockHolder) -> bool:
    """True when the lock's holder is a process still running on this host."""
    import socket

    if holder.host not in (socket.gethostname(), socket.getfqdn()) or holder.pid <= 0:
        return False
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def newest_lock_age(holders: list[LockHolder], now: dt.datetime) -> float | None:
    """Seconds since the newest lock was taken (None when no lock has a known time)."""
    times = [h.created_at for h in holders if h.created_at is not None]
    if not times:
        return None
    return (now - max(times)).total_seconds()


# --- the engine -------------------------------------------------------------------------------


@dataclass
class _LockState:
    """What one retried operation learned about the lock it kept running into."""

    holders: list[LockHolder] = field(default_factory=list)
    cancelled: bool = False
    attempts: int = 0
    last_error: str = ""


class PulumiEngine:
    """The Engine protocol on the real Pulumi engine, through ``pulumi.automation``."""

    name = "pulumi"

    def __init__(
        self,
        *,
        state_dir: Path,
        backend_url: str | None = None,
        passphrase: str | None = None,
        lock_stale_after_s: float = 7200,
        retry_deadline_s: float = 120,
        max_attempts: int = 8,
        pulumi_command: auto.PulumiCommand | str | os.PathLike[str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.state_dir = Path(state_dir).absolute()
        self._backend_dir = self.state_dir / "pulumi"
        self.backend_url = backend_url or f"file://{self._backend_dir}"
        self.lock_stale_after_s = lock_stale_after_s
        self.retry_deadline_s = retry_deadline_s
        self.max_attempts = max(1, max_attempts)
        self._sleep = sleep
        self._now = now
        self._command_spec = pulumi_command
        self._command: auto.PulumiCommand | None = None
        if pulumi_command is None and shutil.which("pulumi") is None:
            raise EngineUnavailable(
                f"the pulumi engine needs the `pulumi` CLI on PATH: {INSTALL_HINT}"
            )
        self._passphrase_env, self._secret_values = self._resolve_passphrase(passphrase)

    @classmethod
    def from_settings(cls, *, settings: EngineSettings, target: Target | None) -> PulumiEngine:
        """The engine for a project's settings (the registry builds it this way)."""
        return cls(state_dir=settings.state_path, backend_url=settings.effective_backend_url)

    # -- setup ---------------------------------------------------------------------------------

    @property
    def is_file_backend(self) -> bool:
        return self.backend_url.startswith("file://")

    def _file_backend_root(self) -> Path | None:
        if not self.is_file_backend:
            return None
        raw = self.backend_url[len("file://") :]
        return Path(os.path.expanduser(urllib.parse.unquote(raw)))

    def _resolve_passphrase(self, passphrase: str | None) -> tuple[dict[str, str], tuple[str, ...]]:
        """The env that hands the passphrase to the CLI, and the values to scrub from output."""
        if passphrase is not None:
            return {"PULUMI_CONFIG_PASSPHRASE": passphrase}, (passphrase,)
        from_env = os.environ.get("PULUMI_CONFIG_PASSPHRASE")
        if from_env is not None:
            return {}, (from_env,)
        file_env = os.environ.get("PULUMI_CONFIG_PASSPHRASE_FILE")
        if file_env:
            return {}, (_read_secret_file(Path(file_env)),)
        root = self._file_backend_root()
        if root is None:
            # Pulumi Cloud manages secrets itself; other DIY backends need the user's passphrase
            # (or a secrets provider in the stack config); the CLI names the variables if so.
            return {}, ()
        path = self._backend_dir / ".passphrase"
        value = _ensure_passphrase_file(path)
        return {"PULUMI_CONFIG_PASSPHRASE_FILE": str(path)}, (value,)

    def _pulumi_command(self) -> auto.PulumiCommand:
        if self._command is not None:
            return self._command
        from pulumi import automation as auto
        from pulumi.automation.errors import InvalidVersionError

        spec = self._command_spec
        try:
            if isinstance(spec, auto.PulumiCommand):
                command = spec
            elif spec is None:
                command = auto.PulumiCommand()
            else:
                exe = Path(spec)
                if exe.name != "pulumi" or exe.parent.name != "bin":
                    raise UsageError(
                        f"pulumi_command {exe} must be an executable named `pulumi` in a `bin` "
                        "directory (the layout of a pulumi install root, e.g. ~/.pulumi/bin/pulumi)"
                    )
                command = auto.PulumiCommand(root=str(exe.parent.parent))
        except InvalidVersionError as exc:
            raise EngineUnavailable(
                f"the pulumi CLI is not usable by pulumi.automation: {exc} (upgrade the CLI, or "
                "set PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK=true to skip this check)"
            ) from exc
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            raise EngineUnavailable(
                f"could not run `pulumi version` ({type(exc).__name__}): {INSTALL_HINT}"
            ) from exc
        self._command = command
        return command

    def _env(self, target: Target | None) -> dict[str, str]:
        env = {
            "PULUMI_BACKEND_URL": self.backend_url,
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            **self._passphrase_env,
        }
        if target is not None:
            env.update(target.aws_env())
        return env

    def _workspace(self, program: Program, target: Target | None) -> auto.LocalWorkspace:
        from pulumi import automation as auto

        root = self._file_backend_root()
        if root is not None:
            root.mkdir(parents=True, exist_ok=True)
        return auto.LocalWorkspace(
            work_dir=str(program.project_dir),
            env_vars=self._env(target),
            pulumi_command=self._pulumi_command(),
        )

    def _stack(
        self, stack: str, program: Program, target: Target | None, *, create: bool
    ) -> auto.Stack:
        from pulumi import automation as auto

        opts = auto.LocalWorkspaceOptions(
            env_vars=self._env(target), pulumi_command=self._pulumi_command()
        )
        root = self._file_backend_root()
        if root is not None:
            root.mkdir(parents=True, exist_ok=True)
        work_dir = str(program.project_dir)
        with self._errors("select", stack):
            if create:
                return auto.create_or_select_stack(stack_name=stack, work_dir=work_dir, opts=opts)
            return auto.select_stack(stack_name=stack, work_dir=work_dir, opts=opts)

    def _sink(self, on_output: OutputSink | None) -> Callable[[str], None] | None:
        if on_output is None:
            return None
        secret_values = self._secret_values

        def forward(line: str) -> None:
            on_output(scrub(line, secret_values))

        return forward

    # -- error translation ---------------------------------------------------------------------

    def _clean(self, text: str) -> str:
        return scrub(text, self._secret_values)

    @contextlib.contextmanager
    def _errors(self, op: str, stack: str | None) -> Iterator[None]:
        """Translate automation's CommandError raised inside the block (no retries here)."""
        from pulumi.automation.errors import CommandError

        try:
            yield
        except CommandError as exc:
            raise self._translate(exc, op, stack) from None

    def _translate(self, exc: Exception, op: str, stack: str | None) -> Exception:
        """branchenv's error for an automation CommandError (scrubbed, one line)."""
        from pulumi.automation import errors as auto_errors

        text = self._clean(str(exc))
        backend = redact_url(self.backend_url)
        if isinstance(exc, auto_errors.StackNotFoundError):
            return StackNotFound(
                f"no stack {stack!r} in the pulumi backend {backend} (`branchenv ls` lists the "
                "stacks; set PULUMI_BACKEND_URL or `--backend-url` if it lives elsewhere)"
            )
        if isinstance(exc, auto_errors.ConcurrentUpdateError):
            return self._locked_error(stack, _LockState(last_error=text))
        return EngineError(f"pulumi {op} failed for stack {stack!r}: {stderr_tail(text)}")

    def _locked_error(self, stack: str | None, state: _LockState) -> StackLocked:
        holders = state.holders or parse_lock_holders(state.last_error)
        who = "; ".join(h.describe() for h in holders) if holders else "another update"
        tried = f" after {state.attempts} attempt(s)" if state.attempts else ""
        cancelled = " (a stale lock was cancelled once, and the stack was locked again)"
        return StackLocked(
            f"stack {stack!r} is locked by {who}{tried}{cancelled if state.cancelled else ''}; "
            f"let that update finish and run `branchenv down` again later, or, if no update is "
            f"running, clear the lock with `pulumi cancel --stack {stack}` "
            f"(PULUMI_BACKEND_URL={redact_url(self.backend_url)})"
        )

    # -- lock retries --------------------------------------------------------------------------

    def _lock_holders(self, stack: auto.Stack, error_text: str) -> list[LockHolder]:
        holders = parse_lock_holders(error_text)
        root = self._file_backend_root()
        if not holders and root is not None:
            project = stack.workspace.project_settings().name
            holders = read_file_backend_locks(root, project, stack.name)
        return holders

    def _with_lock_retry(self, stack: auto.Stack, op: str, call: Callable[[], T]) -> T:
        """Run ``call``; retry while the stack is locked; cancel a stale lock once."""
        import tenacity
        from pulumi.automation.errors import CommandError, ConcurrentUpdateError

        state = _LockState()
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(ConcurrentUpdateError),
            stop=(
                tenacity.stop_after_attempt(self.max_attempts)
                | tenacity.stop_before_delay(self.retry_deadline_s)
            ),
            wait=tenacity.wait_exponential(multiplier=1, min=1, max=30),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    state.attempts += 1
                    try:
                        return call()
                    except ConcurrentUpdateError as exc:
                        state.last_error = self._clean(str(exc))
                        state.holders = self._lock_holders(stack, state.last_error)
                        self._cancel_if_stale(stack, state)
                        raise
        except ConcurrentUpdateError:
            raise self._locked_error(stack.name, state) from None
        except CommandError as exc:
            raise self._translate(exc, op, stack.name) from None
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover

    def _cancel_if_stale(self, stack: auto.Stack, state: _LockState) -> None:
        if state.cancelled:
            return
        age = newest_lock_age(state.holders, self._now())
        if age is None or age < self.lock_stale_after_s:
            return
        if any(_holder_alive_here(h) for h in state.holders):
            # An old lock whose process still runs on this machine is a long update, not a
            # stale lock: cancelling it would corrupt the state that update is writing.
            return
        state.cancelled = True
        with self._errors("cancel", stack.name):
            stack.cancel()

    # -- the Engine protocol -------------------------------------------------------------------

    def _apply_config(self, stack: auto.Stack, config: Mapping[str, str]) -> None:
        from pulumi.automation import ConfigValue

        flat, paths = split_config(config)
        with self._errors("config set-all", stack.name):
            if flat:
                stack.set_all_config(
                    {
                        k: ConfigValue(value=v, secret=k in SECRET_CONFIG_KEYS)
                        for k, v in flat.items()
                    }
                )
            if paths:
                stack.set_all_config(
                    {k: ConfigValue(value=v, secret=False) for k, v in paths.items()}, path=True
                )

    def _apply_tags(
        self, stack: auto.Stack, tags: Mapping[str, str], *, replace: bool = False
    ) -> None:
        """Set the stack tags that differ (``replace``: also drop other ``branchenv:`` tags).

        Skipped on a backend without stack tags: the same tags are in the ``branchenv:tags``
        config."""
        from pulumi.automation.errors import CommandError

        from branchenv.metadata import TAG_PREFIX

        try:
            current = stack.list_tags()
        except CommandError as exc:
            if _NO_TAGS_TEXT in str(exc):
                return
            raise self._translate(exc, "stack tag ls", stack.name) from None
        with self._errors("stack tag set", stack.name):
            for key, value in tags.items():
                if current.get(key) != value:
                    stack.set_tag(key, value)
            if replace:
                for key in current:
                    if key.startswith(TAG_PREFIX) and key not in tags:
                        stack.remove_tag(key)

    def _prepare(
        self,
        stack: str,
        program: Program,
        target: Target,
        metadata: StackMetadata,
        inputs: ProgramInputs,
    ) -> auto.Stack:
        handle = self._stack(stack, program, target, create=True)
        self._apply_config(handle, stack_config(inputs, target))
        self._apply_tags(handle, metadata.to_tags())
        return handle

    def up(
        self,
        *,
        stack: str,
        program: Program,
        target: Target,
        metadata: StackMetadata,
        inputs: ProgramInputs,
        on_output: OutputSink | None = None,
        plan_check: PlanCheck | None = None,
    ) -> UpResult:
        """Create or select the stack, set its config and tags, then ``pulumi up``.

        ``plan_check`` is not called yet: wiring it to the preview's planned inputs is issue 13
        item 3 for this engine."""
        started = time.monotonic()
        handle = self._prepare(stack, program, target, metadata, inputs)
        events = _EventCollector()
        sink = self._sink(on_output)
        result = self._with_lock_retry(
            handle,
            "up",
            lambda: handle.up(
                on_output=sink,
                on_error=sink,
                on_event=events,
                color="never",
                suppress_progress=True,
            ),
        )
        changes = _counts(result.summary.resource_changes if result.summary else None)
        return UpResult(
            stack=stack,
            outputs=_mask_outputs(result.outputs),
            changes=changes or events.changes(),
            resources=events.resources(),
            duration_s=time.monotonic() - started,
        )

    def preview(
        self,
        *,
        stack: str,
        program: Program,
        target: Target,
        metadata: StackMetadata,
        inputs: ProgramInputs,
        on_output: OutputSink | None = None,
    ) -> PreviewResult:
        """``pulumi preview`` after the same config as ``up`` (creates the stack if missing)."""
        handle = self._prepare(stack, program, target, metadata, inputs)
        events = _EventCollector()
        sink = self._sink(on_output)
        result = self._with_lock_retry(
            handle,
            "preview",
            lambda: handle.preview(on_output=sink, on_error=sink, on_event=events, color="never"),
        )
        return PreviewResult(
            stack=stack,
            changes=_counts(result.change_summary),
            resource_types=events.planned_types(),
        )

    def destroy(
        self,
        *,
        stack: str,
        program: Program,
        target: Target,
        on_output: OutputSink | None = None,
        remove: bool = True,
    ) -> DestroyResult:
        """``pulumi destroy``, then (``remove``) ``pulumi stack rm``."""
        started = time.monotonic()
        handle = self._stack(stack, program, target, create=False)
        if target.is_local:
            # The local cloud's endpoints may have moved since `up` (a restarted local cloud).
            # On AWS the stack's own config (its region above all) is left as `up` set it.
            self._apply_config(handle, provider_config(target))
        sink = self._sink(on_output)
        result = self._with_lock_retry(
            handle,
            "destroy",
            lambda: handle.destroy(
                on_output=sink, on_error=sink, color="never", suppress_progress=True
            ),
        )
        changes = _counts(result.summary.resource_changes if result.summary else None)
        if remove:
            self._with_lock_retry(
                handle, "stack rm", lambda: handle.workspace.remove_stack(handle.name)
            )
        return DestroyResult(
            stack=stack,
            deleted=int(changes.get("delete", 0)),
            removed=remove,
            duration_s=time.monotonic() - started,
        )

    def refresh(
        self,
        *,
        stack: str,
        program: Program,
        target: Target,
        on_output: OutputSink | None = None,
    ) -> RefreshResult:
        """``pulumi refresh`` against the target; what it found comes from the engine events
        (a refresh step without new state: gone; one with diffs: changed)."""
        started = time.monotonic()
        handle = self._stack(stack, program, target, create=False)
        if target.is_local:
            self._apply_config(handle, provider_config(target))
        sink = self._sink(on_output)
        events = _EventCollector()
        self._with_lock_retry(
            handle,
            "refresh",
            lambda: handle.refresh(
                on_output=sink,
                on_error=sink,
                on_event=events,
                color="never",
                suppress_progress=True,
            ),
        )
        return RefreshResult(
            stack=stack,
            missing=events.refreshed_missing(),
            changed=events.refreshed_changed(),
            duration_s=time.monotonic() - started,
        )

    def outputs(self, *, stack: str, program: Program) -> dict[str, Any]:
        """The stack's outputs; secret ones masked as ``"[secret]"``."""
        handle = self._stack(stack, program, None, create=False)
        with self._errors("stack output", stack):
            return _mask_outputs(handle.outputs())

    def resources(self, *, stack: str, program: Program) -> list[ResourceSummary]:
        """The stack's resources from ``pulumi stack export`` (for inventories and cost).

        Automation always exports with ``--show-secrets``; secret values are dropped here, on
        the spot, so they never leave this method."""
        handle = self._stack(stack, program, None, create=False)
        with self._errors("stack export", stack):
            deployment = handle.export_stack().deployment or {}
        raw = [r for r in deployment.get("resources", []) if isinstance(r, dict)]
        regions: dict[str, str] = {}
        for r in raw:
            if str(r.get("type", "")).startswith("pulumi:providers:"):
                state = {**(r.get("inputs") or {}), **(r.get("outputs") or {})}
                regions[f"{r.get('urn')}::{r.get('id')}"] = str(state.get("region") or "")
        items = []
        for r in raw:
            type_ = str(r.get("type", ""))
            if not r.get("custom") or not _is_user_resource(type_):
                continue
            urn = str(r.get("urn", ""))
            items.append(
                ResourceSummary(
                    address=urn,
                    type=type_,
                    name=urn.rsplit("::", 1)[-1],
                    id=str(r.get("id") or "") or None,
                    region=regions.get(str(r.get("provider") or "")) or None,
                    outputs=_drop_secrets(r.get("outputs") or {}),
                )
            )
        return items

    def list_stacks(self, *, program: Program) -> list[StackSummary]:
        """Every stack of the project with its tags and metadata (None when unmanaged)."""
        workspace = self._workspace(program, None)
        with self._errors("stack ls", None):
            listed = workspace.list_stacks()
        summaries = []
        for item in listed:
            tags = self._read_tags(workspace, item.name)
            summaries.append(
                StackSummary(
                    stack=item.name,
                    metadata=metadata_or_none(tags),
                    resource_count=item.resource_count,
                    last_update=_format_time(item.last_update),
                    tags=tags,
                )
            )
        return summaries

    def metadata(self, *, stack: str, program: Program) -> StackMetadata | None:
        """The stack's metadata from its tags (or its ``branchenv:tags`` config)."""
        workspace = self._workspace(program, None)
        return metadata_or_none(self._read_tags(workspace, stack))

    def set_metadata(self, *, stack: str, program: Program, metadata: StackMetadata) -> None:
        """Replace the stack's metadata (tags and ``branchenv:tags`` config); no update runs."""
        tags = metadata.to_tags()
        handle = self._stack(stack, program, None, create=False)
        self._apply_config(handle, {TAGS_CONFIG_KEY: json.dumps(tags, sort_keys=True)})
        self._apply_tags(handle, tags, replace=True)

    def _read_tags(self, workspace: auto.LocalWorkspace, stack: str) -> dict[str, str]:
        """Stack tags, merged over the ``branchenv:tags`` config when the tags lack the marker."""
        from pulumi.automation.errors import CommandError

        from branchenv.metadata import MANAGED_BY_KEY

        tags: dict[str, str] = {}
        try:
            tags = dict(workspace.list_tags(stack))
        except CommandError as exc:
            if _NO_TAGS_TEXT not in str(exc):
                raise self._translate(exc, "stack tag ls", stack) from None
        if MANAGED_BY_KEY in tags:
            return tags
        try:
            value = workspace.get_config(stack, TAGS_CONFIG_KEY)
        except CommandError as exc:
            if _CONFIG_KEY_MISSING.search(str(exc)):
                return tags
            raise self._translate(exc, "config get", stack) from None
        try:
            from_config = json.loads(value.value)
        except ValueError:
            return tags
        if not isinstance(from_config, dict):
            return tags
        return {**{str(k): str(v) for k, v in from_config.items()}, **tags}


# --- small helpers ----------------------------------------------------------------------------


class _EventCollector:
    """Collects what the engine events say: planned types, final resources, change counts."""

    def __init__(self) -> None:
        self._types: dict[str, None] = {}
        self._resources: dict[str, ResourceSummary] = {}
        self._changes: dict[str, int] = {}
        self._refresh_missing: dict[str, None] = {}
        self._refresh_changed: dict[str, None] = {}

    def __call__(self, event: Any) -> None:
        pre = getattr(event, "resource_pre_event", None)
        if pre is not None and pre.metadata is not None:
            self._types.setdefault(pre.metadata.type, None)
        done = getattr(event, "res_outputs_event", None)
        if done is not None and done.metadata is not None:
            meta = done.metadata
            if _is_user_resource(meta.type):
                new = meta.new
                if meta.op == "delete":
                    self._resources.pop(meta.urn, None)
                else:
                    self._resources[meta.urn] = ResourceSummary(
                        address=meta.urn,
                        type=meta.type,
                        name=meta.urn.rsplit("::", 1)[-1],
                        id=(new.id or None) if new is not None else None,
                    )
            if str(getattr(meta.op, "value", meta.op)) == "refresh" and _is_user_resource(
                meta.type
            ):
                if meta.new is None:
                    self._refresh_missing.setdefault(meta.urn, None)
                elif meta.diffs:
                    self._refresh_changed.setdefault(meta.urn, None)
        summary = getattr(event, "summary_event", None)
        if summary is not None:
            self._changes = _counts(summary.resource_changes)

    def planned_types(self) -> tuple[str, ...]:
        return tuple(t for t in self._types if _is_user_resource(t))

    def resources(self) -> tuple[ResourceSummary, ...]:
        return tuple(self._resources.values())

    def changes(self) -> dict[str, int]:
        return dict(self._changes)

    def refreshed_missing(self) -> tuple[str, ...]:
        return tuple(self._refresh_missing)

    def refreshed_changed(self) -> tuple[str, ...]:
        return tuple(self._refresh_changed)


def _counts(changes: Mapping[Any, int] | None) -> dict[str, int]:
    """Change counts keyed by plain op names (``create``, ``same``…), whatever the key type."""
    return {str(getattr(k, "value", k)): int(v) for k, v in (changes or {}).items()}


def _is_user_resource(type_: str) -> bool:
    return type_ != "pulumi:pulumi:Stack" and not type_.startswith("pulumi:providers:")


def _drop_secrets(value: Any) -> Any:
    """``value`` with every secret envelope replaced by ``[redacted]``."""
    if isinstance(value, dict):
        if is_secret_envelope(value):
            return REDACTED
        return {k: _drop_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_drop_secrets(v) for v in value]
    return value


def _mask_outputs(outputs: Mapping[str, Any]) -> dict[str, Any]:
    return {key: SECRET_MASK if out.secret else out.value for key, out in outputs.items()}


def _format_time(moment: dt.datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _read_secret_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(
            f"cannot read PULUMI_CONFIG_PASSPHRASE_FILE ({exc.strerror}); fix the path or set "
            "PULUMI_CONFIG_PASSPHRASE"
        ) from exc


def _ensure_passphrase_file(path: Path) -> str:
    """Read the generated passphrase, creating it (0600) on first use."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_secret_file(path)
    value = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
    return value
