"""Provisioning: one branch -> one stack. The core behind `up`, `outputs`, `ls` and `down`.

Every function here takes explicit values and returns a frozen result; the CLI only parses and
renders. Choosing the engine and the target happens in :func:`resolve`, once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from branchenv.errors import SafetyRefusal, StackNotFound, UsageError

if TYPE_CHECKING:
    from branchenv.config import Settings
    from branchenv.engines.base import Engine, OutputSink
    from branchenv.gitinfo import BranchInfo
    from branchenv.metadata import StackMetadata
    from branchenv.naming import StackNames
    from branchenv.targets import Target

PROFILES = ("ephemeral", "prodlike")
LOCAL_ENDPOINT_PLACEHOLDER = "${BRANCHENV_LOCAL_ENDPOINT}"


@dataclasses.dataclass(frozen=True)
class StackContext:
    """Everything one command needs about the branch's stack, resolved once."""

    settings: Settings
    branch: BranchInfo
    names: StackNames
    target: Target
    engine: Engine
    engine_note: str | None
    program: Path
    notes: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class UpOutcome:
    stack: str
    branch: str
    target: str
    engine: str
    outputs: dict[str, Any]
    changes: dict[str, int]
    resource_count: int
    metadata: StackMetadata
    duration_s: float
    notes: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class DownOutcome:
    stack: str
    branch: str
    target: str
    engine: str
    deleted: int
    removed: bool
    already_absent: bool
    duration_s: float
    notes: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class StackRow:
    """One line of `ls`."""

    stack: str
    branch: str | None
    owner: str | None
    target: str | None
    engine: str
    managed: bool
    created_at: dt.datetime | None
    expires_at: dt.datetime | None
    age_s: float | None
    expires_in_s: float | None
    expired: bool
    resource_count: int | None
    reap_pending: bool
    cost_hourly: Decimal | None = None
    """Estimated burn rate in USD/h (None when the engine cannot list the stack's resources)."""
    cost_so_far: Decimal | None = None
    """Estimated USD spent since creation; a lower bound when ``cost_unpriced`` is non-empty."""
    cost_unpriced: tuple[str, ...] = ()


def choose_engine(
    requested: str | None, settings: Settings, target_name: str
) -> tuple[str, str | None]:
    """The engine to use and, when it was picked automatically, why."""
    from branchenv.engines.base import ENGINE_NAMES, pulumi_cli_available

    name = requested or settings.engine
    if name is not None:
        if name not in ENGINE_NAMES:
            raise UsageError(
                f"unknown engine {name!r}. Valid engines: {', '.join(ENGINE_NAMES)} "
                "(pass `--engine NAME` or set BRANCHENV_ENGINE)"
            )
        return name, None
    if target_name == "local" and not pulumi_cli_available():
        return "inprocess", "no `pulumi` CLI on PATH: using the inprocess engine on the local cloud"
    return "pulumi", None


def resolve(
    settings: Settings,
    *,
    branch: str | None,
    target: str | None,
    engine: str | None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    start_local_cloud: bool = True,
) -> StackContext:
    """Resolve branch, names, target and engine for one command."""
    from branchenv.engines import get_engine
    from branchenv.gitinfo import detect_branch
    from branchenv.naming import names_for
    from branchenv.targets import Target, check_target_name

    env = os.environ if env is None else env
    cwd = cwd or settings.project_dir
    target_name = check_target_name(target or settings.default_target)
    info = detect_branch(branch, env=env, cwd=cwd)
    names = names_for(info.name)
    engine_name, engine_note = choose_engine(engine, settings, target_name)
    if engine_name == "inprocess" and target_name != "local":
        raise SafetyRefusal(
            f"the inprocess engine only runs on the local target, not {target_name!r}: it "
            "creates resources on the local cloud. Use `--engine pulumi` for `--target aws`"
        )
    notes: list[str] = []
    if info.detached:
        notes.append(f"detached HEAD: using {info.name!r} as the branch name")
    if engine_note:
        notes.append(engine_note)
    if target_name == "local":
        from branchenv.localcloud import LocalCloud

        cloud = LocalCloud(settings.state_path)
        if start_local_cloud:
            status = cloud.start()
            if status.note and status.note.startswith("started"):
                notes.append(f"started the local cloud at {status.endpoint_url}")
        else:
            status = cloud.status()
        tgt = status.target(settings.region)
    else:
        tgt = Target(name="aws", region=settings.region)
    options: dict[str, Any] = {}
    if engine_name == "pulumi":
        options["backend_url"] = settings.effective_backend_url
    eng = get_engine(engine_name, state_dir=settings.state_path, **options)
    return StackContext(
        settings=settings,
        branch=info,
        names=names,
        target=tgt,
        engine=eng,
        engine_note=engine_note,
        program=settings.program_path,
        notes=tuple(notes),
    )


def stack_template_config(project_dir: Path, target: Target) -> dict[str, str]:
    """The stack config template for ``target`` (``stacks/Pulumi.<target>.yaml``), flattened to
    Pulumi config strings, with the local cloud's endpoint filled in."""
    import yaml

    path = project_dir / "stacks" / f"Pulumi.{target.name}.yaml"
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: not valid YAML ({exc}); fix the template") from exc
    config = data.get("config") or {}
    if not isinstance(config, dict):
        raise UsageError(f"{path}: `config:` must be a map of keys to values")
    flat: dict[str, str] = {}
    for key, value in config.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, dict | list):
            text = json.dumps(value)
        else:
            text = str(value)
        if target.endpoint_url:
            text = text.replace(LOCAL_ENDPOINT_PLACEHOLDER, target.endpoint_url)
        if LOCAL_ENDPOINT_PLACEHOLDER in text:
            raise UsageError(f"{path}: {key} uses {LOCAL_ENDPOINT_PLACEHOLDER} off the local cloud")
        flat[str(key)] = text
    if "aws:region" in flat:
        flat["aws:region"] = target.region
    return flat


def program_config(ctx: StackContext, *, profile: str) -> dict[str, str]:
    """Config the program reads: the stack template plus the branch's prefix and profile."""
    if profile not in PROFILES:
        raise UsageError(f"unknown profile {profile!r}. Valid profiles: {', '.join(PROFILES)}")
    config = stack_template_config(ctx.settings.project_dir, ctx.target)
    config["branchenv:prefix"] = ctx.names.prefix
    config["branchenv:profile"] = profile
    if ctx.target.functions_url:
        config["branchenv:localFunctionsUrl"] = ctx.target.functions_url
    return config


def build_metadata(
    ctx: StackContext,
    *,
    ttl: str | None,
    env: Mapping[str, str] | None = None,
    now: dt.datetime | None = None,
    existing: StackMetadata | None = None,
) -> StackMetadata:
    """The metadata `up` gives the stack; ``existing`` is what the stack already carries."""
    from branchenv.engines.project import project_name
    from branchenv.gitinfo import current_commit, detect_owner
    from branchenv.metadata import StackMetadata, parse_ttl

    env = os.environ if env is None else env
    cwd = ctx.settings.project_dir
    fresh = StackMetadata.create(
        stack=ctx.names.stack,
        branch=ctx.branch.name,
        owner=detect_owner(env=env, cwd=cwd),
        commit=current_commit(cwd),
        ttl=parse_ttl(ttl or ctx.settings.default_ttl),
        now=now or dt.datetime.now(dt.UTC),
        target=ctx.target.name,  # type: ignore[arg-type]
        engine=ctx.engine.name,  # type: ignore[arg-type]
        project=project_name(ctx.program),
    )
    # An update keeps the stack's birth date (age, max-age and cost so far count from it); the
    # TTL runs from now, and a successful `up` clears an earlier reap-pending mark.
    if existing is not None and existing.created_at < fresh.created_at:
        return dataclasses.replace(fresh, created_at=existing.created_at)
    return fresh


def check_may_manage(ctx: StackContext) -> StackMetadata | None:
    """Refuse (exit 3) to create, update or destroy a stack branchenv must not touch: one whose
    stack or branch name matches a protected pattern, one that exists without the managed
    marker, or (on AWS, when an allowlist is configured) one in an account not allowed.
    Returns the stack's current metadata (None when the stack does not exist yet)."""
    from branchenv.reaper.policy import protected_match

    stack, branch = ctx.names.stack, ctx.branch.name
    pattern = protected_match(ctx.settings.protected_patterns, stack, branch)
    if pattern is not None:
        raise SafetyRefusal(
            f"stack {stack!r} (branch {branch!r}) matches the protected pattern {pattern!r}: "
            "branchenv never creates, updates or destroys it; run on a feature branch "
            "(`--branch NAME`) or change `protected_patterns`"
        )
    try:
        metadata = ctx.engine.metadata(stack=stack, program=ctx.program)
    except StackNotFound:
        metadata = None
    else:
        if metadata is None:
            raise SafetyRefusal(
                f"stack {stack!r} exists but carries no branchenv managed-by marker: branchenv "
                "did not create it and will not touch it; pick another branch name or manage "
                "that stack with pulumi directly"
            )
    if ctx.target.name == "aws" and ctx.settings.allowed_account_ids:
        from branchenv.reaper.run import check_account

        check_account(ctx.target.client("sts"), ctx.settings.allowed_account_ids)
    return metadata


def up(
    ctx: StackContext,
    *,
    ttl: str | None = None,
    profile: str = "ephemeral",
    on_output: OutputSink | None = None,
) -> UpOutcome:
    """Create or update the branch's stack; idempotent."""
    existing = check_may_manage(ctx)
    config = program_config(ctx, profile=profile)
    metadata = build_metadata(ctx, ttl=ttl, existing=existing)
    result = ctx.engine.up(
        stack=ctx.names.stack,
        program=ctx.program,
        target=ctx.target,
        metadata=metadata,
        config=config,
        on_output=on_output,
    )
    return UpOutcome(
        stack=result.stack,
        branch=ctx.branch.name,
        target=ctx.target.name,
        engine=ctx.engine.name,
        outputs=result.outputs,
        changes=result.changes,
        resource_count=len(result.resources),
        metadata=metadata,
        duration_s=result.duration_s,
        notes=ctx.notes,
    )


def outputs(ctx: StackContext) -> dict[str, Any]:
    """The branch stack's outputs."""
    return ctx.engine.outputs(stack=ctx.names.stack, program=ctx.program)


def down(ctx: StackContext, *, on_output: OutputSink | None = None) -> DownOutcome:
    """Destroy the branch's stack and remove it; a stack that is already gone is success."""
    check_may_manage(ctx)
    try:
        result = ctx.engine.destroy(
            stack=ctx.names.stack, program=ctx.program, target=ctx.target, on_output=on_output
        )
    except StackNotFound:
        return DownOutcome(
            stack=ctx.names.stack,
            branch=ctx.branch.name,
            target=ctx.target.name,
            engine=ctx.engine.name,
            deleted=0,
            removed=False,
            already_absent=True,
            duration_s=0.0,
            notes=(*ctx.notes, f"no stack {ctx.names.stack!r}: nothing to destroy"),
        )
    return DownOutcome(
        stack=result.stack,
        branch=ctx.branch.name,
        target=ctx.target.name,
        engine=ctx.engine.name,
        deleted=result.deleted,
        removed=result.removed,
        already_absent=False,
        duration_s=result.duration_s,
        notes=ctx.notes,
    )


def list_stacks(
    settings: Settings, *, engines: list[Engine], now: dt.datetime | None = None
) -> list[StackRow]:
    """Every stack the given engines know for the project's program, newest first."""
    from branchenv.cost.estimate import estimate_stack, inventory_from_engine
    from branchenv.cost.prices import load_prices

    now = now or dt.datetime.now(dt.UTC)
    prices = load_prices()
    rows: list[StackRow] = []
    for engine in engines:
        for summary in engine.list_stacks(program=settings.program_path):
            md = summary.metadata
            cost = estimate_stack(
                inventory_from_engine(
                    engine,
                    stack=summary.stack,
                    program=settings.program_path,
                    metadata=md,
                    default_region=settings.region,
                ),
                prices,
                now=now,
            )
            priced = cost.inventory_available
            rows.append(
                StackRow(
                    stack=summary.stack,
                    branch=md.branch if md else None,
                    owner=md.owner if md else None,
                    target=md.target if md else None,
                    engine=engine.name,
                    managed=md is not None,
                    created_at=md.created_at if md else None,
                    expires_at=md.expires_at if md else None,
                    age_s=md.age(now).total_seconds() if md else None,
                    expires_in_s=md.expires_in(now).total_seconds() if md else None,
                    expired=md.expired(now) if md else False,
                    resource_count=summary.resource_count,
                    reap_pending=md.reap_pending if md else False,
                    cost_hourly=cost.hourly if priced else None,
                    cost_so_far=cost.so_far if priced else None,
                    cost_unpriced=cost.unpriced_types,
                )
            )
    rows.sort(key=lambda r: r.created_at or dt.datetime.min.replace(tzinfo=dt.UTC), reverse=True)
    return rows


def engines_for_listing(settings: Settings, requested: str | None) -> list[Engine]:
    """The engines `ls` asks: the requested one, else inprocess plus pulumi when it runs here."""
    from branchenv.engines import get_engine
    from branchenv.engines.base import pulumi_cli_available

    names = [requested] if requested else ["inprocess"]
    if not requested and pulumi_cli_available():
        names.append("pulumi")
    engines: list[Engine] = []
    for name in names:
        options: dict[str, Any] = {}
        if name == "pulumi":
            options["backend_url"] = settings.effective_backend_url
        engines.append(get_engine(name, state_dir=settings.state_path, **options))
    return engines
