"""The ``pulumi`` engine: the real Pulumi engine through ``pulumi.automation``.

Every run of the ``pulumi`` binary goes through automation's one gateway
(``PulumiCommand.run``, non-interactive), directly or through a workspace; this module chooses
the stack, the working directory, the environment and the config, and translates automation's
errors into branchenv's error tree at the boundary.

Where things live:

- **Backend**: ``file://<state dir>/pulumi`` unless ``backend_url`` says otherwise (``s3://...``,
  ``https://api.pulumi.com``). Everything another machine must see is there: state, locks and
  the stack's metadata as stack tags. DIY backends keep stack tags only from CLI v3.211.0, so an
  older CLI is refused on them (checked once, from ``pulumi version``).
- **Stack config**: a settings file the engine owns, per backend and stack
  (:mod:`.settings`), never ``Pulumi.<stack>.yaml`` in the user's checkout. Each ``up`` writes
  the whole desired config into it, dropping keys no longer desired.
- **Working directories**: the program's project directory only for what runs the program or
  reads its config (``up``, ``preview``, ``destroy``, ``refresh``, ``config``), always with
  ``--stack`` and ``--config-file``; every other command (``stack init/select/ls/tag/rm/export/
  output``, ``cancel``) runs in the settings directory, so neither the user's checkout nor its
  selected stack ever changes.
- **Passphrase**: the ``passphrase`` argument, else ``PULUMI_CONFIG_PASSPHRASE`` /
  ``PULUMI_CONFIG_PASSPHRASE_FILE``, else (``file://`` backends only) one generated once into
  ``<state dir>/pulumi/.passphrase`` (0600). The source a stack was created with is recorded
  beside its settings; a later run choosing another source is refused (exit 2) instead of
  silently encrypting with another passphrase. Passphrases are scrubbed from every line of
  output and every error message.

A stack's target never changes under it: ``up --target aws`` on a stack created for ``local``
is refused (exit 3) before anything is written.

Locks: an operation refused because another one holds the stack's lock (automation's
``ConcurrentUpdateError``; the CLI itself fails at once) is retried with tenacity, with jitter,
until :data:`LOCK_WAIT_S` has passed (long enough for one update: of two concurrent updates the
second waits for the first) or the attempt cap (``max_attempts``, else the deadline's worth at
the longest pause) is reached. ``stack init`` takes the lock too and waits the same. A lock older
than ``lock_stale_after_s`` whose holder is not a live process on this machine is cancelled once
before the next attempt. Stack tags are written in one place, :meth:`PulumiEngine._write_tags`,
under the stack's DIY lock (the CLI's tag writes are an unlocked read-modify-write of one file).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import json
import math
import os
import secrets
import shutil
import subprocess
import time
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
    PlannedStep,
    PreviewResult,
    Program,
    ProgramInputs,
    RefreshResult,
    ResourceSummary,
    StackSummary,
    UpResult,
    metadata_or_none,
)
from branchenv.engines.pulumi import backend as diy
from branchenv.engines.pulumi.helpers import (
    MIN_DIY_TAGS_VERSION,
    REDACTED,
    SECRET_CONFIG_KEYS,
    drop_secrets,
    format_time,
    is_user_resource,
    newest_lock_age,
    parse_lock_holders,
    parse_version,
    plain_op,
    scrub,
    stderr_tail,
    structured_config,
)
from branchenv.engines.pulumi.plan import planned_name
from branchenv.engines.pulumi.settings import StackSettings
from branchenv.engines.pulumi_program import provider_config, stack_config
from branchenv.errors import (
    ConfigError,
    EngineError,
    EngineUnavailable,
    SafetyRefusal,
    StackLocked,
    StackNotFound,
    UsageError,
)
from branchenv.text import plural

if TYPE_CHECKING:
    from pulumi import automation as auto

    from branchenv.metadata import StackMetadata
    from branchenv.targets import Target

T = TypeVar("T")

INSTALL_HINT = (
    "install the pulumi CLI (`curl -fsSL https://get.pulumi.com | sh`, then put ~/.pulumi/bin on "
    "PATH), or use `--engine inprocess` with `--target local`"
)
ENV_PASSPHRASE = "PULUMI_CONFIG_PASSPHRASE"
ENV_PASSPHRASE_FILE = "PULUMI_CONFIG_PASSPHRASE_FILE"
SOURCE_ARGUMENT = "argument"
SOURCE_GENERATED = "generated"

LOCK_WAIT_S = 900.0
"""How long an operation waits for another's hold of the stack's lock (the CLI itself fails at
once on a locked stack): long enough for one update, so of two concurrent updates the second
runs after the first instead of being refused."""
_LOCK_WAIT_MAX_S = 10.0
"""The longest pause between two tries of a locked CLI operation."""
_TAG_LOCK_WAIT_MAX_S = 5.0
"""The same for branchenv's own tag writes (a few S3 calls each)."""
_LOCK_JITTER_S = 0.5


@dataclass(frozen=True)
class _Passphrase:
    """Where this run's passphrase comes from, and the env that hands it to the CLI."""

    source: str | None  # argument | PULUMI_CONFIG_PASSPHRASE | ..._FILE | generated | None
    env: Mapping[str, str]


@dataclass
class _LockState:
    """What one retried operation learned about the lock it kept running into."""

    holders: list[diy.LockHolder] = field(default_factory=list)
    cancelled: bool = False
    attempts: int = 0
    last_error: str = ""


class _StackExists(EngineError):
    """`stack init` of a stack that exists (automation's StackAlreadyExistsError)."""


class PulumiEngine:
    """The Engine protocol on the real Pulumi engine, through ``pulumi.automation``."""

    name = "pulumi"
    resources_checked = False  # resources() reads the exported state

    def __init__(
        self,
        *,
        state_dir: Path,
        backend_url: str | None = None,
        passphrase: str | None = None,
        lock_stale_after_s: float = 7200,
        retry_deadline_s: float = LOCK_WAIT_S,
        max_attempts: int | None = None,
        unmarked_settle_s: float = 10,
        pulumi_command: auto.PulumiCommand | str | os.PathLike[str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.state_dir = Path(state_dir).absolute()
        self._backend_dir = self.state_dir / "pulumi"
        self.backend_url = backend_url or f"file://{self._backend_dir}"
        self.lock_stale_after_s = lock_stale_after_s
        self.retry_deadline_s = retry_deadline_s
        self.max_attempts = None if max_attempts is None else max(1, max_attempts)
        self.unmarked_settle_s = unmarked_settle_s
        self._sleep = sleep
        self._now = now
        self._command_spec = pulumi_command
        self._command: auto.PulumiCommand | None = None
        self._version_checked = False
        self._bucket: diy.Bucket | None = None
        self._bucket_opened = False
        if pulumi_command is None and shutil.which("pulumi") is None:
            raise EngineUnavailable(
                f"the pulumi engine needs the `pulumi` CLI on PATH: {INSTALL_HINT}"
            )
        self._passphrase = self._resolve_passphrase(passphrase)
        self._secret_values = self._known_secrets(passphrase)

    @classmethod
    def from_settings(cls, *, settings: EngineSettings, target: Target | None) -> PulumiEngine:
        """The engine for a project's settings (the registry builds it this way)."""
        return cls(state_dir=settings.state_path, backend_url=settings.effective_backend_url)

    # -- setup ---------------------------------------------------------------------------------

    @property
    def is_diy(self) -> bool:
        return diy.is_diy(self.backend_url)

    @property
    def is_file_backend(self) -> bool:
        return diy.scheme(self.backend_url) == "file"

    def _resolve_passphrase(self, passphrase: str | None) -> _Passphrase:
        if passphrase is not None:
            return _Passphrase(SOURCE_ARGUMENT, {ENV_PASSPHRASE: passphrase})
        if ENV_PASSPHRASE in os.environ:
            return _Passphrase(ENV_PASSPHRASE, {})
        if os.environ.get(ENV_PASSPHRASE_FILE):
            return _Passphrase(ENV_PASSPHRASE_FILE, {})
        if self.is_file_backend:
            path = self._backend_dir / ".passphrase"
            return _Passphrase(SOURCE_GENERATED, {ENV_PASSPHRASE_FILE: str(path)})
        # Pulumi Cloud manages secrets itself; a DIY backend of the user's own needs the user's
        # passphrase (refused with the variables named when an operation needs it).
        return _Passphrase(None, {})

    def _known_secrets(self, passphrase: str | None) -> tuple[str, ...]:
        """Every passphrase this process could hand the CLI: scrubbed from all output."""
        values = [passphrase or "", os.environ.get(ENV_PASSPHRASE, "")]
        file_env = os.environ.get(ENV_PASSPHRASE_FILE)
        if file_env:
            values.append(_read_secret_file(Path(file_env), ENV_PASSPHRASE_FILE))
        generated = self._backend_dir / ".passphrase"
        if generated.is_file():
            values.append(_read_secret_file(generated, "the generated passphrase file"))
        return tuple(v for v in values if v)

    def _generated_passphrase(self) -> None:
        """Create the generated passphrase file on first use (file backends only)."""
        if self._passphrase.source == SOURCE_GENERATED:
            value = _ensure_passphrase_file(self._backend_dir / ".passphrase")
            if value not in self._secret_values:
                self._secret_values = (*self._secret_values, value)

    def _describe_source(self, source: str | None) -> str:
        return {
            SOURCE_ARGUMENT: "the passphrase branchenv was given",
            ENV_PASSPHRASE: ENV_PASSPHRASE,
            ENV_PASSPHRASE_FILE: f"the file named by {ENV_PASSPHRASE_FILE}",
            SOURCE_GENERATED: f"branchenv's generated passphrase ({self._backend_dir}/.passphrase)",
            None: "no passphrase",
        }.get(source, str(source))

    def _check_passphrase(self, stack: str, settings: StackSettings) -> None:
        """Refuse a run whose passphrase source differs from the one the stack was made with;
        require one for DIY backends (Pulumi Cloud keeps secrets itself: nothing to check)."""
        if not self.is_diy:
            return
        current = self._passphrase.source
        if current is None:
            raise ConfigError(
                f"the pulumi backend {diy.redact_url(self.backend_url)} encrypts secrets with a "
                f"passphrase: set {ENV_PASSPHRASE} (or {ENV_PASSPHRASE_FILE}) to the team's "
                "passphrase"
            )
        recorded = settings.passphrase_source(stack)
        if recorded is not None and recorded != current:
            raise ConfigError(
                f"stack {stack!r} was created with {self._describe_source(recorded)}, but this "
                f"run would use {self._describe_source(current)}: run with the stack's own "
                f"passphrase source (unset or set {ENV_PASSPHRASE}/{ENV_PASSPHRASE_FILE} as when "
                f"it was created); if it is the same passphrase and you mean to switch, delete "
                f"{settings.root / (stack + '.branchenv.json')}"
            )

    def _record_passphrase(self, stack: str, settings: StackSettings) -> None:
        if self.is_diy and self._passphrase.source is not None:
            settings.record_passphrase_source(stack, self._passphrase.source)

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
        self._check_version(command)
        from branchenv.engines.pulumi.command import grouped

        self._command = command = grouped(command)
        return command

    def _check_version(self, command: auto.PulumiCommand) -> None:
        """DIY backends keep stack tags, where every machine reads the metadata, only from CLI
        v3.211.0 (pulumi/pulumi#19882); refuse older CLIs there, once."""
        if self._version_checked or not self.is_diy:
            self._version_checked = True
            return
        found: tuple[int, int, int] | None = None
        if command.version is not None:
            v = command.version
            found = (v.major, v.minor, v.patch)
        else:  # automation's own version check was skipped: ask the CLI
            from pulumi.automation.errors import CommandError

            try:
                answer = command.run(["version"], str(self.state_dir), {}).stdout
            except CommandError as exc:
                raise EngineUnavailable(
                    f"`pulumi version` failed: {stderr_tail(str(exc))}"
                ) from exc
            found = parse_version(answer)
        if found is None or found < MIN_DIY_TAGS_VERSION:
            shown = "v" + ".".join(map(str, found)) if found else "of an unknown version"
            minimum = ".".join(map(str, MIN_DIY_TAGS_VERSION))
            raise EngineUnavailable(
                f"the pulumi CLI is {shown}; with a DIY backend "
                f"({diy.redact_url(self.backend_url)}) branchenv needs v{minimum} or newer, the "
                "first that keeps stack tags in the backend, where `ls`, `down` and the reaper "
                "read each stack's metadata from any checkout. Upgrade the CLI "
                "(`pulumi self-update` or https://www.pulumi.com/docs/install/)"
            )
        self._version_checked = True

    def _open_bucket(self) -> diy.Bucket | None:
        if not self._bucket_opened:
            self._bucket = diy.open_bucket(self.backend_url)
            self._bucket_opened = True
        return self._bucket

    def _env(self, target: Target | None) -> dict[str, str]:
        env = {
            "PULUMI_BACKEND_URL": self.backend_url,
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            **self._passphrase.env,
        }
        if target is not None:
            # The region only: the CLI reaches the backend with this same environment, so the
            # local cloud's dummy keys and endpoint (which its provider config already carries)
            # must not redirect a team's s3:// backend to loopback.
            env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = target.region
        return env

    def _settings(self, program: Program) -> StackSettings:
        return StackSettings(self.state_dir, self.backend_url, program.project, _runtime(program))

    def _prepare_backend(self) -> None:
        root = diy.file_backend_root(self.backend_url)
        if root is not None:
            root.mkdir(parents=True, exist_ok=True)
        self._generated_passphrase()

    def _meta_workspace(self, program: Program) -> auto.LocalWorkspace:
        """A workspace in the engine's settings directory: for every command that does not run
        the program, so the user's checkout and its selected stack are never touched."""
        from pulumi import automation as auto

        command = self._pulumi_command()
        self._prepare_backend()
        return auto.LocalWorkspace(
            work_dir=str(self._settings(program).prepare()),
            env_vars=self._env(None),
            pulumi_command=command,
        )

    def _run_stack(self, stack: str, program: Program, target: Target | None) -> auto.Stack:
        """The stack in a workspace of the program's project directory (which the program needs),
        whose stack selection is a no-op: every command names ``--stack`` instead."""
        from pulumi import automation as auto

        command = self._pulumi_command()
        self._prepare_backend()
        workspace = _project_workspace(
            work_dir=str(program.project_dir), env_vars=self._env(target), pulumi_command=command
        )
        return auto.Stack.select(stack, workspace)

    def _meta_dir(self, program: Program) -> Path:
        """The settings directory, ready for a command run there through `_cli`."""
        self._pulumi_command()
        self._prepare_backend()
        return self._settings(program).prepare()

    def _select(self, stack: str, program: Program) -> None:
        """Raise StackNotFound unless the stack exists in the backend."""
        with self._errors("stack select", stack):
            self._meta_workspace(program).select_stack(stack)

    def _exists(self, stack: str, program: Program) -> bool:
        try:
            self._select(stack, program)
        except StackNotFound:
            return False
        return True

    def _create(self, stack: str, program: Program, on_wait: OutputSink | None = None) -> None:
        """``stack init``, waiting for a lock on the new stack (the CLI's CreateStack takes it:
        two first ups racing there would both be refused)."""

        def create() -> None:
            with self._errors("stack init", stack):
                self._meta_workspace(program).create_stack(stack)

        self._retry_locked(stack, program, "stack init", create, on_wait)

    def _cli(self, args: list[str], cwd: Path, env: Mapping[str, str], op: str, stack: str) -> str:
        """Run one CLI command through automation's gateway; stdout on success."""
        with self._errors(op, stack):
            return self._pulumi_command().run(args, str(cwd), dict(env)).stdout

    def _sink(self, on_output: OutputSink | None) -> Callable[[str], None] | None:
        if on_output is None:
            return None

        def forward(line: str) -> None:
            on_output(scrub(line, self._secret_values))

        return forward

    # -- config --------------------------------------------------------------------------------

    def _desired_config(self, inputs: ProgramInputs, target: Target) -> dict[str, str]:
        """The whole config a stack's update runs with: the shared mapping of the neutral
        inputs to Pulumi stack config (engines/pulumi_program.py)."""
        return stack_config(inputs, target)

    def _write_config(
        self, stack: str, program: Program, target: Target, config: Mapping[str, str]
    ) -> None:
        """Make the stack's settings file hold exactly ``config``: plaintext values written
        into the file, then secret ones through `pulumi config set-all --secret`."""
        settings = self._settings(program)
        plain = {k: v for k, v in config.items() if k not in SECRET_CONFIG_KEYS}
        hidden = {k: v for k, v in config.items() if k in SECRET_CONFIG_KEYS}
        settings.write_config(stack, structured_config(plain))
        if not hidden:
            return
        args = [
            "config",
            "set-all",
            "--stack",
            stack,
            "--config-file",
            str(settings.config_file(stack)),
        ]
        for key, value in hidden.items():
            args += ["--secret", f"{key}={value}"]
        self._cli(args, program.project_dir, self._env(target), "config set-all", stack)

    # -- tags (metadata) -----------------------------------------------------------------------

    def _read_tags(self, stack: str, program: Program) -> dict[str, str]:
        """The stack's tags from the backend; raises StackNotFound / EngineError."""
        with self._errors("stack tag ls", stack):
            tags: Any = self._meta_workspace(program).list_tags(stack)
        if not isinstance(tags, dict):
            # DIY: Tags() is nil when the tags file cannot be read, and `--json` prints null.
            raise EngineError(
                f"pulumi could not read the stack tags of {stack!r} "
                f"(`pulumi stack tag ls --json` printed {json.dumps(tags)}): the backend's tags "
                f"file .pulumi/stacks/{program.project}/{stack}.pulumi-tags in "
                f"{diy.redact_url(self.backend_url)} is unreadable. Without its metadata "
                "branchenv does not act on the stack (`ls` lists it as needing attention): "
                "restore or repair that file"
            )
        return {str(k): str(v) for k, v in tags.items()}

    def _write_tags(
        self,
        stack: str,
        program: Program,
        tags: Mapping[str, str],
        *,
        replace: bool,
        current: Mapping[str, str] | None = None,
    ) -> None:
        """The one writer of stack tags: under the stack's lock, the current tags with ``tags``
        set (``replace``: other ``branchenv:`` tags dropped). On a DIY bucket the engine opens
        that is one write of the tags file; elsewhere one `stack tag set`/`rm` per change."""
        from branchenv.metadata import TAG_PREFIX

        def merged(current: Mapping[str, str]) -> dict[str, str]:
            wanted = dict(current)
            if replace:
                wanted = {k: v for k, v in wanted.items() if not k.startswith(TAG_PREFIX)}
            wanted.update(tags)
            return wanted

        def read() -> dict[str, str]:
            try:
                return self._read_tags(stack, program)
            except EngineError:
                if self._open_bucket() is None:
                    raise
                return {}  # an unreadable tags file: this write replaces it

        first = dict(current) if current is not None else read()
        if merged(first) == first:
            return  # nothing to change: no lock taken, no write

        def write() -> None:
            current = read()
            wanted = merged(current)
            if wanted == current:
                return
            bucket = self._open_bucket()
            if bucket is not None:
                try:
                    diy.write_tags(bucket, program.project, stack, wanted)
                    return
                except diy.TagsFormatUnknown:
                    pass  # a newer CLI's format: let the CLI write it
            workspace = self._meta_workspace(program)
            with self._errors("stack tag set", stack):
                for key, value in wanted.items():
                    if current.get(key) != value:
                        workspace.set_tag(stack, key, value)
                for key in current:
                    if key not in wanted:
                        workspace.remove_tag(stack, key)

        self._holding_stack_lock(stack, program, write)

    def _holding_stack_lock(self, stack: str, program: Program, call: Callable[[], T]) -> T:
        """Run ``call`` holding the stack's DIY lock (retried while someone else holds it; a
        stale lock cancelled once). Pulumi Cloud has no client-side lock: ``call`` runs as is."""
        import tenacity

        bucket = self._open_bucket()
        if bucket is None:
            return call()
        state = _LockState()
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(diy.Locked),
            stop=(
                tenacity.stop_after_attempt(
                    self._lock_attempts(_TAG_LOCK_WAIT_MAX_S, per_cli_attempt=4)
                )
                | tenacity.stop_before_delay(self.retry_deadline_s)
            ),
            wait=tenacity.wait_exponential(multiplier=0.25, min=0.25, max=_TAG_LOCK_WAIT_MAX_S)
            + tenacity.wait_random(0, _LOCK_JITTER_S),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    state.attempts += 1
                    try:
                        with diy.hold_lock(bucket, program.project, stack):
                            return call()
                    except diy.Locked as exc:
                        state.holders = exc.holders
                        if self._stale(state):
                            state.cancelled = True
                            diy.remove_locks(bucket, program.project, stack)
                        raise
        except diy.Locked:
            raise self._locked_error(stack, state) from None
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover

    def _check_existing(
        self, stack: str, program: Program, target: Target
    ) -> dict[str, str] | None:
        """The stack's tags, None when it does not exist; refused (exit 3) when it exists
        without branchenv's managed marker or was created for another target. Reads only."""
        try:
            tags = self._read_tags(stack, program)
        except StackNotFound:
            return None
        existing = metadata_or_none(tags)
        # `stack init` and the tag write are two CLI steps (the CLI's CreateStack takes the
        # stack's DIY lock itself, so branchenv cannot hold it across both): another run's
        # brand-new stack is briefly unmarked. Look again for a few seconds before refusing.
        deadline = time.monotonic() + self.unmarked_settle_s
        delay = 0.25
        while existing is None and time.monotonic() < deadline:
            self._sleep(delay)
            delay = min(delay * 2, 2.0)
            try:
                tags = self._read_tags(stack, program)
            except StackNotFound:
                return None
            existing = metadata_or_none(tags)
        if existing is None:
            raise SafetyRefusal(
                f"stack {stack!r} exists in {diy.redact_url(self.backend_url)} but carries no "
                "branchenv managed-by marker: branchenv did not create it and will not touch "
                "it; pick another branch name or manage that stack with pulumi directly"
            )
        if existing.target != target.name:
            raise SafetyRefusal(
                f"stack {stack!r} was created for target {existing.target!r}, not "
                f"{target.name!r}: a stack's target never changes (its state, config and "
                f"resources belong to {existing.target!r}). Destroy it first with "
                f"`branchenv down --target {existing.target}`, or use another branch "
                "(`--branch NAME`)"
            )
        return tags

    # -- the Engine protocol -------------------------------------------------------------------

    def _prepare_update(
        self,
        stack: str,
        program: Program,
        target: Target,
        inputs: ProgramInputs,
        metadata: StackMetadata | None,
        on_output: OutputSink | None = None,
    ) -> tuple[auto.Stack, dict[str, str] | None]:
        """Checks (nothing written before they pass), then the stack, created when missing
        (with ``metadata``'s tags at once, so it is never found unmarked), with its whole
        desired config written. Returns the stack and its tags before this run (None when it
        was created now)."""
        settings = self._settings(program)
        self._pulumi_command()
        self._check_passphrase(stack, settings)
        before = self._check_existing(stack, program, target)
        if before is None:
            try:
                self._create(stack, program, self._sink(on_output))
            except _StackExists:
                # A concurrent first `up` created it after we looked: it is that run's stack
                # now (marked within the settle window, or refused as unmarked).
                before = self._check_existing(stack, program, target)
                if before is None:
                    raise
            else:
                if metadata is not None:
                    self._write_tags(stack, program, metadata.to_tags(), replace=False, current={})
        self._record_passphrase(stack, settings)
        self._write_config(stack, program, target, self._desired_config(inputs, target))
        return self._run_stack(stack, program, target), before

    def _config_file(self, stack: str, program: Program) -> str:
        return str(self._settings(program).config_file(stack))

    def _planned(
        self, handle: auto.Stack, stack: str, program: Program, on_output: OutputSink | None
    ) -> tuple[dict[str, int], list[PlannedStep], list[str]]:
        events = _Events()
        sink = self._sink(on_output)
        result = self._with_lock_retry(
            handle,
            program,
            "preview",
            lambda: handle.preview(
                on_output=sink,
                on_error=sink,
                on_event=events,
                color="never",
                config_file=self._config_file(stack, program),
            ),
            sink,
        )
        counts = events.planned_counts() or _counts(result.change_summary)
        return counts, events.planned_steps(), events.planned_types()

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
        """Create or select the stack, write its whole config, check the plan (``plan_check``
        on the preview's planned physical names), write its tags, then ``pulumi up``."""
        started = time.monotonic()
        handle, before = self._prepare_update(stack, program, target, inputs, metadata, on_output)
        created = before is None
        if plan_check is not None:
            _, steps, _ = self._planned(handle, stack, program, on_output)
            try:
                plan_check(steps)
            except BaseException:
                if created:
                    self._remove(stack, program)
                raise
        if before is not None:
            self._write_tags(stack, program, metadata.to_tags(), replace=False, current=before)
        events = _Events()
        sink = self._sink(on_output)
        result = self._with_lock_retry(
            handle,
            program,
            "up",
            lambda: handle.up(
                on_output=sink,
                on_error=sink,
                on_event=events,
                color="never",
                suppress_progress=True,
                config_file=self._config_file(stack, program),
            ),
            sink,
        )
        return UpResult(
            stack=stack,
            outputs=_mask_outputs(result.outputs),
            changes=events.applied_counts(),
            resources=events.resources(target.region),
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
        """``pulumi preview`` with the same config as ``up``: per resource its change kind and
        changed properties. A stack created only to preview is removed again."""
        handle, before = self._prepare_update(stack, program, target, inputs, None)
        try:
            counts, steps, types = self._planned(handle, stack, program, on_output)
        finally:
            if before is None:
                self._remove(stack, program)
        return PreviewResult(
            stack=stack, changes=counts, steps=tuple(steps), resource_types=tuple(types)
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
        """``pulumi destroy --continue-on-error``, then (``remove``) ``pulumi stack rm``.

        Works from any checkout that shares the backend and passphrase. When resources are left
        (their delete failed), raises EngineError naming them after trying everything, with the
        partial DestroyResult as ``.result``."""
        started = time.monotonic()
        settings = self._settings(program)
        self._pulumi_command()
        self._check_passphrase(stack, settings)
        self._select(stack, program)
        self._record_passphrase(stack, settings)
        if target.is_local or not settings.config_file(stack).is_file():
            # The local cloud's endpoints may have moved since `up`; a fresh checkout has no
            # config file yet. On AWS an existing file is left as `up` wrote it.
            self._write_config(stack, program, target, provider_config(target))
        handle = self._run_stack(stack, program, target)
        events = _Events()
        sink = self._sink(on_output)
        failure: EngineError | None = None
        try:
            self._with_lock_retry(
                handle,
                program,
                "destroy",
                lambda: handle.destroy(
                    on_output=sink,
                    on_error=sink,
                    on_event=events,
                    color="never",
                    suppress_progress=True,
                    continue_on_error=True,
                    config_file=self._config_file(stack, program),
                ),
                sink,
            )
        except StackLocked:
            raise
        except EngineError as exc:
            failure = exc
        deleted = events.applied_counts().get("delete", 0)
        if failure is not None:
            left = tuple(r.address for r in self._resources(stack, program))
            partial = DestroyResult(
                stack=stack,
                deleted=deleted,
                removed=False,
                duration_s=time.monotonic() - started,
                failed=left,
            )
            error = EngineError(
                f"{failure} ({plural(len(left), 'resource')} left: {', '.join(left) or 'none'}; "
                "run `branchenv down` again once the cause is fixed)"
            )
            error.result = partial  # type: ignore[attr-defined]
            raise error
        if remove:
            self._remove(stack, program)
        return DestroyResult(
            stack=stack,
            deleted=deleted,
            removed=remove,
            duration_s=time.monotonic() - started,
        )

    def _remove(self, stack: str, program: Program) -> None:
        """``pulumi stack rm`` in the settings directory (removing the engine's settings file,
        never one in the user's checkout), then the engine's local record."""
        workspace = self._meta_workspace(program)

        def remove() -> None:
            with self._errors("stack rm", stack):
                workspace.remove_stack(stack)

        self._retry_locked(stack, program, "stack rm", remove)
        self._settings(program).forget(stack)

    def refresh(
        self,
        *,
        stack: str,
        program: Program,
        target: Target,
        on_output: OutputSink | None = None,
    ) -> RefreshResult:
        """``pulumi refresh`` against the target: resources gone from it and resources whose
        state changed."""
        started = time.monotonic()
        settings = self._settings(program)
        self._pulumi_command()
        self._check_passphrase(stack, settings)
        self._select(stack, program)
        if target.is_local or not settings.config_file(stack).is_file():
            self._write_config(stack, program, target, provider_config(target))
        handle = self._run_stack(stack, program, target)
        events = _Events()
        sink = self._sink(on_output)
        self._with_lock_retry(
            handle,
            program,
            "refresh",
            lambda: handle.refresh(
                on_output=sink,
                on_error=sink,
                on_event=events,
                color="never",
                suppress_progress=True,
                config_file=self._config_file(stack, program),
            ),
            sink,
        )
        missing, changed = events.refreshed()
        return RefreshResult(
            stack=stack, missing=missing, changed=changed, duration_s=time.monotonic() - started
        )

    def outputs(self, *, stack: str, program: Program) -> dict[str, Any]:
        """The stack's outputs, secret ones as ``"[secret]"`` (never decrypted: no passphrase
        is needed to read them)."""
        text = self._cli(
            ["stack", "output", "--json", "--stack", stack],
            self._meta_dir(program),
            self._env(None),
            "stack output",
            stack,
        )
        try:
            values = json.loads(text or "{}")
        except ValueError as exc:
            raise EngineError(f"`pulumi stack output --json` for {stack!r} is not JSON") from exc
        if not isinstance(values, dict):
            return {}
        return {k: SECRET_MASK if v == SECRET_MASK else v for k, v in values.items()}

    def resources(self, *, stack: str, program: Program) -> list[ResourceSummary]:
        """The stack's resources from ``pulumi stack export`` (for inventories and cost), with
        their provider's region. Exported without ``--show-secrets``: secret values stay
        ciphertext and are dropped here."""
        return self._resources(stack, program)

    def _export(self, stack: str, program: Program) -> dict[str, Any]:
        text = self._cli(
            ["stack", "export", "--stack", stack],
            self._meta_dir(program),
            self._env(None),
            "stack export",
            stack,
        )
        try:
            exported = json.loads(text or "{}")
        except ValueError as exc:
            raise EngineError(f"`pulumi stack export` for {stack!r} is not JSON") from exc
        deployment = exported.get("deployment") if isinstance(exported, dict) else None
        return deployment if isinstance(deployment, dict) else {}

    def _resources(self, stack: str, program: Program) -> list[ResourceSummary]:
        raw = [
            r for r in self._export(stack, program).get("resources") or [] if isinstance(r, dict)
        ]
        regions: dict[str, str] = {}
        for r in raw:
            if str(r.get("type", "")).startswith("pulumi:providers:"):
                state = {**(r.get("inputs") or {}), **(r.get("outputs") or {})}
                regions[f"{r.get('urn')}::{r.get('id')}"] = str(state.get("region") or "")
        items = []
        for r in raw:
            type_ = str(r.get("type", ""))
            if not r.get("custom") or not is_user_resource(type_):
                continue
            urn = str(r.get("urn", ""))
            items.append(
                ResourceSummary(
                    address=urn,
                    type=type_,
                    name=urn.rsplit("::", 1)[-1],
                    id=str(r.get("id") or "") or None,
                    region=regions.get(str(r.get("provider") or "")) or None,
                    outputs=drop_secrets(r.get("outputs") or {}),
                )
            )
        return items

    def list_stacks(self, *, program: Program, count_missing: bool = True) -> list[StackSummary]:
        """Every stack of the project in the backend with its metadata (None when unmanaged)
        and its program's resource count (the Stack and providers not counted). A stack whose
        tags or state cannot be read is listed with ``attention`` saying so."""
        workspace = self._meta_workspace(program)
        with self._errors("stack ls", None):
            listed = workspace.list_stacks()

        def summarize(item: Any) -> StackSummary | None:
            attention: str | None = None
            tags: dict[str, str] = {}
            count: int | None = None
            try:
                tags = self._read_tags(item.name, program)
            except StackNotFound:
                return None  # removed since `stack ls` answered
            except EngineError as exc:
                attention = str(exc)
            try:
                count = len(self._resources(item.name, program))
            except StackNotFound:
                return None
            except EngineError as exc:
                attention = attention or str(exc)
            return StackSummary(
                stack=item.name,
                metadata=metadata_or_none(tags),
                resource_count=count,
                last_update=format_time(item.last_update),
                tags=tags,
                attention=attention,
            )

        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            return [s for s in pool.map(summarize, listed) if s is not None]

    def metadata(self, *, stack: str, program: Program) -> StackMetadata | None:
        """The stack's metadata from its tags in the backend (None when unmanaged)."""
        self._pulumi_command()
        return metadata_or_none(self._read_tags(stack, program))

    def set_metadata(self, *, stack: str, program: Program, metadata: StackMetadata) -> None:
        """Replace the stack's metadata tags (under the stack's lock); no update runs."""
        self._pulumi_command()
        self._write_tags(stack, program, metadata.to_tags(), replace=True)

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
        backend = diy.redact_url(self.backend_url)
        if isinstance(exc, auto_errors.StackNotFoundError):
            return StackNotFound(
                f"no stack {stack!r} in the pulumi backend {backend} (`branchenv ls` lists the "
                "stacks; set BRANCHENV_BACKEND_URL or `backend_url` if it lives elsewhere)"
            )
        if isinstance(exc, auto_errors.ConcurrentUpdateError):
            return self._locked_error(stack, _LockState(last_error=text))
        if isinstance(exc, auto_errors.StackAlreadyExistsError):
            return _StackExists(f"pulumi {op} failed for stack {stack!r}: {stderr_tail(text)}")
        return EngineError(f"pulumi {op} failed for stack {stack!r}: {stderr_tail(text)}")

    def _locked_error(self, stack: str | None, state: _LockState) -> StackLocked:
        holders = state.holders or parse_lock_holders(state.last_error)
        who = "; ".join(h.describe() for h in holders) if holders else "another update"
        tried = f" after {plural(state.attempts, 'attempt')}" if state.attempts else ""
        cancelled = " (a stale lock was cancelled once, and the stack was locked again)"
        return StackLocked(
            f"stack {stack!r} is locked by {who}{tried}{cancelled if state.cancelled else ''}; "
            f"let that update finish and run `branchenv down` again later, or, if no update is "
            f"running, clear the lock with `pulumi cancel --stack {stack}` "
            f"(PULUMI_BACKEND_URL={diy.redact_url(self.backend_url)})"
        )

    # -- lock retries --------------------------------------------------------------------------

    def _lock_holders(self, program: Program, stack: str, error_text: str) -> list[diy.LockHolder]:
        holders = parse_lock_holders(error_text)
        if not holders:
            bucket = self._open_bucket()
            if bucket is not None:
                holders = diy.read_locks(bucket, program.project, stack)
        return holders

    def _with_lock_retry(
        self,
        handle: auto.Stack,
        program: Program,
        op: str,
        call: Callable[[], T],
        on_wait: OutputSink | None = None,
    ) -> T:
        """Run an automation call on ``handle``; retry while the stack is locked."""
        from pulumi.automation.errors import CommandError

        def attempt() -> T:
            try:
                return call()
            except CommandError as exc:
                raise self._translate(exc, op, handle.name) from None

        return self._retry_locked(handle.name, program, op, attempt, on_wait)

    def _lock_attempts(self, wait_max_s: float, *, per_cli_attempt: int = 1) -> int:
        """The attempt cap of a lock wait: ``max_attempts`` (times ``per_cli_attempt``) when
        given, else as many as the deadline holds once the backoff reaches ``wait_max_s``, plus
        the ramp up to it: the deadline, not a fixed few tries, bounds the wait."""
        if self.max_attempts is not None:
            return self.max_attempts * per_cli_attempt
        return math.ceil(self.retry_deadline_s / wait_max_s) + 10

    def _retry_locked(
        self,
        stack: str,
        program: Program,
        op: str,
        call: Callable[[], T],
        on_wait: OutputSink | None = None,
    ) -> T:
        """Run ``call`` (which raises StackLocked on a held lock); retry with backoff while the
        stack is locked, cancelling a stale lock once. The wait is bounded by
        ``retry_deadline_s`` (long enough for one update): the loser of two concurrent updates
        waits for the winner. ``on_wait`` hears once who holds the lock."""
        import tenacity

        state = _LockState()
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(StackLocked),
            stop=(
                tenacity.stop_after_attempt(self._lock_attempts(_LOCK_WAIT_MAX_S))
                | tenacity.stop_before_delay(self.retry_deadline_s)
            ),
            # The jitter parts two runs that lost the check-write-check race of lock.go together
            # (each saw the other's lock file and removed its own): they retry apart.
            wait=tenacity.wait_exponential(multiplier=1, min=1, max=_LOCK_WAIT_MAX_S)
            + tenacity.wait_random(0, _LOCK_JITTER_S),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    state.attempts += 1
                    try:
                        return call()
                    except StackLocked as exc:
                        state.last_error = self._clean(str(exc))
                        state.holders = self._lock_holders(program, stack, state.last_error)
                        self._cancel_if_stale(stack, program, state)
                        if on_wait is not None and state.attempts == 1:
                            who = "; ".join(h.describe() for h in state.holders)
                            on_wait(
                                f"stack {stack!r} is locked by {who or 'another update'}; "
                                f"waiting up to {self.retry_deadline_s:.0f} s for it"
                            )
                        raise
        except StackLocked:
            raise self._locked_error(stack, state) from None
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover

    def _stale(self, state: _LockState) -> bool:
        if state.cancelled:
            return False
        age = newest_lock_age(state.holders, self._now())
        if age is None or age < self.lock_stale_after_s:
            return False
        # An old lock whose process still runs on this machine is a long update, not a stale
        # lock: cancelling it would corrupt the state that update is writing.
        return not any(_holder_alive_here(h) for h in state.holders)

    def _cancel_if_stale(self, stack: str, program: Program, state: _LockState) -> None:
        if not self._stale(state):
            return
        state.cancelled = True
        self._cli(
            ["cancel", "--yes", "--stack", stack],
            self._meta_dir(program),
            self._env(None),
            "cancel",
            stack,
        )


# --- automation glue ----------------------------------------------------------------------------


_PROJECT_WORKSPACE: list[type] = []


def _project_workspace(**kwargs: Any) -> auto.LocalWorkspace:
    """A LocalWorkspace in the user's project directory that never selects a stack: a
    selection there would change which stack the user's own `pulumi` commands target (the
    class is made on first use: pulumi is imported lazily)."""
    if not _PROJECT_WORKSPACE:
        from pulumi import automation as auto

        class ProjectWorkspace(auto.LocalWorkspace):
            def select_stack(self, stack_name: str) -> None:
                return None

        _PROJECT_WORKSPACE.append(ProjectWorkspace)
    workspace: auto.LocalWorkspace = _PROJECT_WORKSPACE[0](**kwargs)
    return workspace


def _runtime(program: Program) -> Any:
    """The ``runtime`` of the program's Pulumi.yaml (for the settings directory's project)."""
    import yaml

    for name in ("Pulumi.yaml", "Pulumi.yml"):
        path = program.project_dir / name
        if path.is_file():
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            except (OSError, yaml.YAMLError) as exc:
                raise ConfigError(f"{path}: not valid YAML ({exc}); fix the file") from exc
            runtime = data.get("runtime") if isinstance(data, dict) else None
            if isinstance(runtime, dict):
                return {"name": runtime.get("name", "python")}
            return runtime or "python"
    return "python"


class _Events:
    """What the engine events say: planned steps (preview), applied steps (up/destroy/refresh)."""

    def __init__(self) -> None:
        self._planned: dict[str, PlannedStep] = {}
        self._types: dict[str, None] = {}
        self._applied: dict[str, tuple[str, Any]] = {}

    def __call__(self, event: Any) -> None:
        pre = getattr(event, "resource_pre_event", None)
        if pre is not None and pre.metadata is not None:
            meta = pre.metadata
            if is_user_resource(meta.type):
                self._types.setdefault(meta.type, None)
                if pre.planning:
                    self._planned[meta.urn] = _planned_step(meta)
        done = getattr(event, "res_outputs_event", None)
        if done is not None and done.metadata is not None:
            meta = done.metadata
            if is_user_resource(meta.type):
                op = plain_op(meta.op)
                previous = self._applied.get(meta.urn)
                if previous is None or op == "replace" or previous[0] == "same":
                    self._applied[meta.urn] = (op, meta)

    def planned_steps(self) -> list[PlannedStep]:
        return list(self._planned.values())

    def planned_types(self) -> list[str]:
        return list(self._types)

    def planned_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for step in self._planned.values():
            counts[step.op] = counts.get(step.op, 0) + 1
        return counts

    def applied_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for op, _ in self._applied.values():
            counts[op] = counts.get(op, 0) + 1
        return counts

    def resources(self, region: str) -> tuple[ResourceSummary, ...]:
        items = []
        for urn, (op, meta) in self._applied.items():
            if op == "delete" or meta.new is None:
                continue
            items.append(
                ResourceSummary(
                    address=urn,
                    type=meta.type,
                    name=urn.rsplit("::", 1)[-1],
                    id=meta.new.id or None,
                    region=region,
                    outputs=drop_secrets(dict(meta.new.outputs or {})),
                )
            )
        return tuple(items)

    def refreshed(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        missing = tuple(
            urn for urn, (op, meta) in self._applied.items() if op == "delete" or meta.new is None
        )
        changed = tuple(
            urn
            for urn, (op, meta) in self._applied.items()
            if urn not in missing and (op == "update" or meta.diffs)
        )
        return missing, changed


def _planned_step(meta: Any) -> PlannedStep:
    op = plain_op(meta.op)
    state = meta.new if meta.new is not None else meta.old
    inputs = dict(state.inputs or {}) if state is not None else {}
    physical, prop = planned_name(meta.type, inputs) if op != "delete" else (None, None)
    diffs = list(meta.diffs or []) or sorted((meta.detailed_diff or {}).keys())
    return PlannedStep(
        address=meta.urn,
        type=meta.type,
        name=meta.urn.rsplit("::", 1)[-1],
        op=op,
        diff=tuple(diffs),
        physical_name=physical,
        name_property=prop,
    )


def _counts(changes: Mapping[Any, int] | None) -> dict[str, int]:
    """Change counts keyed by plain op names, whatever the key type."""
    return {plain_op(k): int(v) for k, v in (changes or {}).items()}


def _mask_outputs(outputs: Mapping[str, Any]) -> dict[str, Any]:
    return {key: SECRET_MASK if out.secret else out.value for key, out in outputs.items()}


def _holder_alive_here(holder: diy.LockHolder) -> bool:
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


def _read_secret_file(path: Path, named: str) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(
            f"cannot read {named} {path} ({exc.strerror}); fix the path or set {ENV_PASSPHRASE}"
        ) from exc


def _ensure_passphrase_file(path: Path) -> str:
    """Read the generated passphrase, creating it (0600) on first use."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_secret_file(path, "the generated passphrase file")
    value = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
    return value


__all__ = ["REDACTED", "PulumiEngine"]
