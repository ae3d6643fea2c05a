"""Every safety rail, in one module, enforced by the core functions themselves (not only by the
CLI), each refusing with :class:`~branchenv.errors.SafetyRefusal` (exit 3) and a message that
names what was refused, why, and the fix:

- protected patterns: a stack or branch matching one is never created, updated or destroyed;
- the managed marker: a stack that exists without it is not branchenv's;
- the account allowlist: on AWS, act only in accounts listed in ``allowed_account_ids``;
- local-only engines never run against another target;
- orphan sweeps only where the listing sees every machine's stacks;
- branch isolation: every fixed physical name a plan would create is derived from the stack's
  prefix (:func:`check_isolation`, a :data:`~branchenv.engines.base.PlanCheck`).

:func:`resolve_target` is the one place a command turns a target name into a
:class:`~branchenv.targets.Target` (starting or finding the local cloud as asked).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from branchenv.errors import ConfigError, SafetyRefusal
from branchenv.text import plural

if TYPE_CHECKING:
    from branchenv.config import Settings
    from branchenv.engines.base import Engine, PlannedStep, ProgramInputs
    from branchenv.metadata import StackMetadata
    from branchenv.targets import Target

CloudMode = Literal["start", "running", "none"]


# --- protected patterns -------------------------------------------------------------------


def protected_match(patterns: Iterable[str], *names: str | None) -> str | None:
    """The first pattern matching any of ``names`` (case-insensitive fnmatch), else None."""
    for pattern in patterns:
        for name in names:
            if name and fnmatch.fnmatchcase(name.lower(), pattern.lower()):
                return pattern
    return None


def check_protected(stack: str, branch: str, patterns: Sequence[str]) -> None:
    """Refuse a stack or branch matching a protected pattern. No patterns at all is a
    configuration error, never "no protection"."""
    if not patterns:
        raise ConfigError(
            "protected_patterns is empty: that would disable every protection, which branchenv "
            "refuses; list the patterns to protect in [tool.branchenv] (or "
            "BRANCHENV_PROTECTED_PATTERNS), or leave the setting out to use the default"
        )
    pattern = protected_match(patterns, stack, branch)
    if pattern is not None:
        raise SafetyRefusal(
            f"stack {stack!r} (branch {branch!r}) matches the protected pattern {pattern!r}: "
            "branchenv never creates, updates or destroys it; run on a feature branch "
            "(`--branch NAME`) or change `protected_patterns`"
        )


# --- the managed marker -------------------------------------------------------------------


def check_managed(stack: str, metadata: StackMetadata | None, *, exists: bool) -> None:
    """Refuse a stack that exists without the managed-by marker (``metadata`` None)."""
    if exists and metadata is None:
        raise SafetyRefusal(
            f"stack {stack!r} exists but carries no branchenv managed-by marker: branchenv "
            "did not create it and will not touch it; pick another branch name or manage "
            "that stack with its own tool directly"
        )


# --- the account allowlist ----------------------------------------------------------------


def check_account(sts_client: Any, allowed: Sequence[str], *, action: str = "reap") -> str:
    """The caller's account id when it is in ``allowed``; else refuse. An empty allowlist
    refuses too: acting in an unlisted account needs the account named first."""
    account = str(sts_client.get_caller_identity()["Account"])
    if not allowed:
        raise SafetyRefusal(
            f"refusing to {action} in AWS account {account}: no allowed_account_ids are "
            f'configured; add `allowed_account_ids = ["{account}"]` to branchenv.toml (or set '
            "BRANCHENV_ALLOWED_ACCOUNT_IDS) if this account is meant for branch stacks"
        )
    if account not in allowed:
        raise SafetyRefusal(
            f"refusing to {action} in AWS account {account}: it is not in allowed_account_ids "
            f"({', '.join(allowed)}); use credentials for an allowed account or add it to "
            "allowed_account_ids (BRANCHENV_ALLOWED_ACCOUNT_IDS)"
        )
    return account


# --- engines and targets ------------------------------------------------------------------


def check_engine_target(engine_name: str, target_name: str) -> None:
    """Refuse a local-only engine on any other target: it would create nothing real, and a
    listing through it would see nothing of that target (before any call to the target)."""
    from branchenv.engines import ENGINES, engine_spec

    if engine_spec(engine_name).local_only and target_name != "local":
        elsewhere = [s.name for s in ENGINES.values() if not s.local_only]
        fix = f" Use `--engine {elsewhere[0]}` for `--target {target_name}`." if elsewhere else ""
        raise SafetyRefusal(
            f"the {engine_name} engine only runs on the local target, not {target_name!r}: it "
            f"creates resources on the local cloud.{fix}"
        )


def orphan_sweep_refusal(
    settings: Settings, engines: Sequence[Engine], target_name: str
) -> str | None:
    """Why an orphan sweep must not run here, or None.

    A resource is an orphan when no listed stack claims it, so the listing must see every
    stack that could own resources in the target. On the local cloud, this machine's state is
    all there is. On AWS, only an engine whose listing is shared (the registry's
    ``shared_state``: a shared backend such as s3:// or Pulumi Cloud) sees everyone's stacks:
    with state on this machine, every other machine's live stacks would look orphaned. So every
    listed engine must share its state: one shared listing beside a local one would still take
    the local one's stacks on other machines for orphans."""
    from branchenv.engines import ENGINES, engine_spec

    if target_name != "aws":
        return None
    unshared = [e.name for e in engines if not engine_spec(e.name).shares_state(settings)]
    if engines and not unshared:
        return None
    listed = ", ".join(unshared) or "no engine"
    shared = [s.name for s in ENGINES.values() if not s.local_only and s.shared_state is not False]
    others = " or ".join(f"`--engine {e.name}`" for e in engines if e.name not in unshared)
    return (
        f"refusing to sweep orphans on AWS: stacks are listed ({listed}) from state on this "
        "machine only, so other machines' live stacks would look orphaned; set `backend_url` "
        "(BRANCHENV_BACKEND_URL) to the team's shared backend (s3://... or Pulumi Cloud)"
        + (f" and use {' or '.join(f'`--engine {n}`' for n in shared)}" if shared else "")
        + (f"; or sweep only what a shared listing sees: {others}" if others else "")
    )


# --- branch isolation ---------------------------------------------------------------------

KEPT_OPS = frozenset({"create", "replace", "update", "same"})
"""Planned operations after which the resource exists under its physical name."""

PrefixRule = Callable[[str, str], bool]
"""``rule(physical_name, prefix)``: whether a name is derived from the stack's prefix."""


def derived_from_prefix(name: str, prefix: str) -> bool:
    """The default rule: the prefix appears in the name as a whole token (bounded by the name's
    ends or by characters that are not letters or digits), so ``feature-x-orders`` and
    ``/aws/lambda/feature-x-api`` are ``feature-x``'s, and ``feature-xy-orders`` is not."""
    pattern = rf"(?<![a-z0-9]){re.escape(prefix.lower())}(?![a-z0-9])"
    return re.search(pattern, name.lower()) is not None


def check_isolation(
    steps: Sequence[PlannedStep],
    inputs: ProgramInputs,
    *,
    project_prefix_rule: PrefixRule | None = None,
) -> None:
    """The branch-isolation :data:`~branchenv.engines.base.PlanCheck`: every fixed physical
    name the plan would create or keep must be derived from the stack's prefix, else another
    branch's stack of the project could claim the same resource (and its `down` delete it).

    Auto-named resources (``physical_name`` None) are unique by construction; names listed in
    ``inputs.allow_shared`` (``--allow-shared NAME``) are deliberately shared. Refuses (exit 3)
    before anything changes, naming each resource, its name and the fix."""
    rule = project_prefix_rule or derived_from_prefix
    offending = [
        step
        for step in steps
        if step.op in KEPT_OPS
        and step.physical_name
        and step.physical_name not in inputs.allow_shared
        and not rule(step.physical_name, inputs.prefix)
    ]
    if not offending:
        return
    listed = "; ".join(
        f"{s.type} {s.name!r} has the fixed name {s.physical_name!r}"
        + (f" (its `{s.name_property}`)" if s.name_property else "")
        for s in offending[:10]
    )
    more = f" (+{len(offending) - 10} more)" if len(offending) > 10 else ""
    raise SafetyRefusal(
        f"branch isolation: {plural(len(offending), 'resource')} would have a name every branch's stack "
        f"shares, so one branch's `down` could delete another's: {listed}{more}. Derive each "
        f"name from the stack's prefix {inputs.prefix!r} (Pulumi config `branchenv:prefix`, "
        "Terraform variable `prefix`), or leave it unset to have it generated; for a resource "
        "meant to be shared, pass `--allow-shared NAME`. Nothing was changed"
    )


@dataclasses.dataclass(frozen=True)
class ResolvedTarget:
    """A target for one command, and a note when resolving it started the local cloud."""

    target: Target
    note: str | None = None


def resolve_target(
    settings: Settings,
    name: str | None = None,
    *,
    cloud: CloudMode = "start",
    region: str | None = None,
) -> ResolvedTarget:
    """The target ``name`` (default: the ``default_target`` setting) for one command.

    For ``local``, ``cloud`` says what the command needs of the local cloud: ``start`` it if
    it is not running, only find it ``running`` (an error if not), or ``none`` (a target
    without endpoints, for work that reads only this machine's state: a dry-run listing).
    A local target only ever points at loopback (checked when its clients are made)."""
    from branchenv.targets import Target, check_target_name

    target_name = check_target_name(name or settings.default_target)
    region = region or settings.region
    if target_name != "local":
        return ResolvedTarget(Target(name=target_name, region=region))
    if cloud == "none":
        return ResolvedTarget(Target(name="local", region=region))
    from branchenv.config import ensure_state_dir
    from branchenv.localcloud import LocalCloud

    local = LocalCloud(settings.state_path)
    if cloud == "running":
        return ResolvedTarget(local.status().target(region))
    ensure_state_dir(settings)
    status = local.start()
    note = None
    if status.note and status.note.startswith("started"):
        note = f"started the local cloud at {status.endpoint_url}"
    return ResolvedTarget(status.target(region), note)
