"""`branchenv up | outputs | ls | down`: one branch, one stack."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from branchenv.cli import common, render
from branchenv.cli.options import epilog, new_app, option
from branchenv.cli.progress import progress

if TYPE_CHECKING:
    from decimal import Decimal

    from branchenv.config import Settings
    from branchenv.provision import StackContext, UpOutcome

app = new_app()

BranchOpt = option("--branch")
TargetOpt = option("--target", default_help="default: default_target")
EngineOpt = option("--engine", default_help="default: auto")
JsonOpt = option("--json", False)
TtlOpt = option("--ttl", default_help="default: default_ttl")
ProfileOpt = option("--profile", "ephemeral")
AllowSharedOpt = option(
    "--allow-shared", [], default_help="any other fixed name must derive from the branch's prefix"
)
ProgramOpt = option("--program", default_help="default: the `program` setting's, or the only one")


def _settings(target: str | None = None, engine: str | None = None) -> Settings:
    return common.load(target=target, engine=engine)


def _context(
    branch: str | None,
    target: str | None,
    engine: str | None,
    program: str | None,
    *,
    start_local_cloud: bool = True,
) -> StackContext:
    return common.context(
        branch, target, engine, start_local_cloud=start_local_cloud, program=program
    )


def _notes(notes: tuple[str, ...]) -> None:
    common.notes(notes)


@app.command("up", epilog=epilog(signals=True))
def up(
    branch: str | None = BranchOpt,
    target: str | None = TargetOpt,
    engine: str | None = EngineOpt,
    ttl: str | None = TtlOpt,
    profile: str = ProfileOpt,
    preview_only: bool = option("--preview-only", False),
    allow_shared: list[str] = AllowSharedOpt,
    program: str | None = ProgramOpt,
    use_pool: bool | None = option("--pool", default_help="default: the pool setting"),
    as_json: bool = JsonOpt,
) -> None:
    """Create or update this branch's stack (idempotent) and print its outputs.

    On SIGINT/SIGTERM it finishes first (the state then records every resource), then exits
    130/143.
    """
    from branchenv import pool, provision
    from branchenv.harness.signals import SignalGuard
    from branchenv.metadata import format_duration

    settings = _settings(target, engine)
    # bad input and refusals fail before anything starts (the local cloud included)
    common.preflight(
        settings, branch, ttl=ttl, profile=profile, acts=not preview_only, program=program
    )
    provision.check_allow_shared(allow_shared)
    if preview_only:
        _preview(
            branch,
            target,
            engine,
            program,
            ttl=ttl,
            profile=profile,
            as_json=as_json,
            allow_shared=allow_shared,
        )
        return
    # SIGINT/SIGTERM: `up` runs to its end (its state then records every resource it made),
    # then exits 128 + the signal (see harness.signals).
    with SignalGuard(on_signal=render.status) as guard:
        ctx = guard.finish(
            lambda: _context(branch, target, engine, program), what="the local cloud has started"
        )
        guard.checkpoint()
        _notes(ctx.notes)
        title = f"up {ctx.names.stack} ({ctx.engine.name} engine, target {ctx.target.name})"
        with progress(title, quiet=False) as sink:
            outcome = guard.finish(
                lambda: pool.up(
                    ctx,
                    flag=use_pool,
                    ttl=ttl,
                    profile=profile,
                    on_output=sink,
                    say=render.status,
                    allow_shared=allow_shared,
                ),
                what="`up` has recorded every resource it created",
            )
    from branchenv.github import publish_up

    publish_up(outcome)  # $GITHUB_OUTPUT / $GITHUB_STEP_SUMMARY, when running on Actions
    _notice_up(ctx, outcome)

    def human() -> None:
        md = outcome.metadata
        typer.echo(
            f"stack {outcome.stack} (branch {outcome.branch}) is up: "
            f"{common.plural(outcome.resource_count, 'resource')}, expires in {format_duration(md.expires_at - md.created_at)} "
            f"[{outcome.duration_s:.1f} s]"
        )
        _outputs_table(outcome.outputs)

    render.emit(outcome, as_json=as_json, human=human)
    _exit_if_signalled(
        guard.received,
        f"`up` finished first, so the state records every resource of stack {outcome.stack}; "
        f"remove it with `branchenv down --branch {outcome.branch}`",
    )


def _notice_up(ctx: StackContext, outcome: UpOutcome) -> None:
    """On GitHub Actions: a notice with the stack's endpoints and its estimated cost (best
    effort: a cost that cannot be estimated is said so, never a failed `up`)."""
    from branchenv.cifold import endpoints, notice_text
    from branchenv.cli import output

    annotator = output.current().annotator
    if not annotator.github:
        return
    from branchenv.cost.estimate import stack_cost
    from branchenv.harness.publish import RunCost

    cost = None
    try:
        estimate = stack_cost(
            ctx.engine,
            stack=outcome.stack,
            program=ctx.program,
            metadata=outcome.metadata,
            region=ctx.target.region,
        )
        if estimate.inventory_available:
            cost = RunCost.of(estimate).line()
    except Exception as exc:  # the notice is a courtesy: `up` itself succeeded
        render.status(f"note: cost not estimated for the notice ({type(exc).__name__})")
    annotator.notice(
        notice_text(outcome.stack, endpoints(outcome.outputs), cost),
        title=f"branchenv up: {outcome.stack}",
    )


def _exit_if_signalled(signum: int | None, what_happened: str) -> None:
    """After a command that ran to its end despite a signal: say so, exit 128 + signum."""
    if signum is None:
        return
    from branchenv.harness.signals import Interrupted

    stopped = Interrupted(signum)
    render.status(f"branchenv: {stopped}: {what_happened}")
    raise typer.Exit(stopped.exit_code)


_SIGNS = {"create": "+", "update": "~", "replace": "+-", "delete": "-", "same": " ", "read": ">"}


@app.command("preview", epilog=epilog())
def preview(
    branch: str | None = BranchOpt,
    target: str | None = TargetOpt,
    engine: str | None = EngineOpt,
    ttl: str | None = TtlOpt,
    profile: str = ProfileOpt,
    show_same: bool = option("--show-same", False),
    allow_shared: list[str] = AllowSharedOpt,
    program: str | None = ProgramOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Show what `up` would change, per resource with the changed properties; change nothing.

    A plan `up` would refuse (a fixed name every branch would share) is refused here too."""
    from branchenv import provision

    common.preflight(
        _settings(target, engine), branch, ttl=ttl, profile=profile, acts=False, program=program
    )
    provision.check_allow_shared(allow_shared)
    _preview(
        branch,
        target,
        engine,
        program,
        ttl=ttl,
        profile=profile,
        as_json=as_json,
        same=show_same,
        allow_shared=allow_shared,
    )


def _preview(
    branch: str | None,
    target: str | None,
    engine: str | None,
    program: str | None,
    *,
    ttl: str | None,
    profile: str,
    as_json: bool,
    same: bool = False,
    allow_shared: list[str] | None = None,
) -> None:
    from branchenv import provision
    from branchenv.engines.base import CHANGE_KINDS

    ctx = _context(branch, target, engine, program)
    _notes(ctx.notes)
    title = f"preview {ctx.names.stack} ({ctx.engine.name} engine, target {ctx.target.name})"
    with progress(title, quiet=False) as sink:
        outcome = provision.preview(
            ctx, ttl=ttl, profile=profile, on_output=sink, allow_shared=allow_shared or ()
        )

    def human() -> None:
        shown = [s for s in outcome.steps if same or s.op != "same"]
        render.table(
            f"stack {outcome.stack}: what `up` would do",
            ["", "change", "type", "name", "changed properties"],
            [(_SIGNS.get(s.op, "?"), s.op, s.type, s.name, ", ".join(s.diff)) for s in shown],
        )
        typer.echo(
            ", ".join(f"{outcome.changes.get(k, 0)} to {k}" for k in CHANGE_KINDS if k != "same")
            + f", {outcome.changes.get('same', 0)} unchanged (nothing was changed)"
        )

    render.emit(outcome, as_json=as_json, human=human)


def _money(value: Decimal | None, unpriced: tuple[str, ...]) -> str:
    from branchenv.cost.budget import money

    if value is None:
        return "n/a"
    return f"${money(value)}" + ("+" if unpriced else "")


def _resources(count: int | None, missing: int | None) -> str:
    if count is None:
        return ""
    return f"{count} (missing: {missing} of {count})" if missing else str(count)


def _outputs_table(outputs: dict[str, Any]) -> None:
    render.table("outputs", ["name", "value"], sorted(outputs.items()))


@app.command("outputs", epilog=epilog())
def outputs(
    branch: str | None = BranchOpt,
    target: str | None = TargetOpt,
    engine: str | None = EngineOpt,
    program: str | None = ProgramOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Print this branch's stack outputs (endpoint, names, ARNs)."""
    from branchenv import pool
    from branchenv.errors import LocalCloudError, StackNotFound

    settings = _settings(target, engine)
    name = common.preflight(settings, branch, acts=False, program=program)
    try:
        ctx = common.context(
            branch, target, engine, start_local_cloud=False, settings=settings, program=program
        )
    except LocalCloudError:
        # nothing runs there, so no stack can: say how to get one, not how to start an empty cloud
        raise StackNotFound(
            f"no stack for branch {name!r}: the local cloud is not running",
            hint=_no_stack_hint(name),
        ) from None
    try:
        values = pool.outputs(ctx)
    except StackNotFound as exc:
        raise StackNotFound(
            getattr(exc, "message", None) or str(exc), hint=_no_stack_hint(ctx.branch.name)
        ) from None
    render.emit(values, as_json=as_json, human=lambda: _outputs_table(values))


def _no_stack_hint(branch: str) -> str:
    return (
        f"create it with `branchenv up --branch {branch}`, or `branchenv ls` lists the stacks "
        "there are"
    )


def duration_words(seconds: float | None, *, expired: bool = False) -> str:
    """One wording for durations and expiry, shared by ls and reap: ``3h 59m``,
    ``expired 42s ago``."""
    import datetime as dt

    from branchenv.metadata import format_duration

    if seconds is None:
        return ""
    if expired or seconds < 0:
        return f"expired {format_duration(dt.timedelta(seconds=max(1, round(abs(seconds)))))} ago"
    return format_duration(dt.timedelta(seconds=round(seconds)))


@app.command("ls", epilog=epilog())
def ls(
    target: str | None = option("--target", default_help="default: every target"),
    engine: str | None = EngineOpt,
    as_json: bool = JsonOpt,
) -> None:
    """List stacks: branch, owner, age, expires-in, resources, engine, target, account and
    region."""
    from branchenv import provision

    settings = _settings(target, engine)
    if target is not None:
        from branchenv.targets import check_target_name

        check_target_name(target)
    engines = provision.engines_for_listing(settings, engine, target_name=target)
    rows = [
        r
        for r in provision.list_stacks(settings, engines=engines)
        if target is None or r.target in (None, target)
    ]

    several = len({r.program for r in rows}) > 1

    def human() -> None:
        render.table(
            common.plural(len(rows), "stack"),
            [
                "stack",
                "branch",
                "owner",
                "age",
                "expires in",
                "resources",
                "cost so far",
                "engine",
                "target",
                "account/region",
                *(["program"] if several else []),
            ],
            [
                (
                    r.stack,
                    "(needs attention)" if r.attention else r.branch or "(unmanaged)",
                    r.owner,
                    duration_words(r.age_s),
                    duration_words(r.expires_in_s, expired=r.expired),
                    _resources(r.resource_count, r.missing),
                    _money(r.cost_so_far, r.cost_unpriced),
                    f"{r.engine} ({r.backend})" if r.backend else r.engine,
                    r.target,
                    _where(r.account, r.region),
                    *([r.program] if several else []),
                )
                for r in rows
            ],
            abbreviate=("stack", "branch"),
            no_wrap=("age", "expires in"),
            optional=("account/region", "target", "engine", "program"),
        )
        for r in rows:
            if r.attention:
                typer.echo(f"needs attention: {r.stack}: {r.attention}")

    render.emit(rows, as_json=as_json, human=human)


def _where(account: str | None, region: str | None) -> str:
    """``account/region`` as recorded by the stack (``?`` for what it did not record)."""
    if account is None and region is None:
        return ""
    return f"{account or '?'}/{region or '?'}"


@app.command("down", epilog=epilog(signals=True))
def down(
    branch: str | None = BranchOpt,
    target: str | None = TargetOpt,
    engine: str | None = EngineOpt,
    program: str | None = ProgramOpt,
    yes: bool = option("--yes", False, default_help="even a stack someone else created"),
    as_json: bool = JsonOpt,
) -> None:
    """Destroy this branch's stack and remove it. A stack already gone is not an error.

    On a terminal, a stack someone else created is shown (its owner and resources) and the
    stack's name asked for first; never with --yes or when stdin is not a terminal.

    SIGINT/SIGTERM do not stop a teardown: it finishes, then `down` exits 130/143.
    """
    from branchenv import pool
    from branchenv.harness.signals import SignalGuard

    common.preflight(_settings(target, engine), branch, program=program)
    # SIGINT/SIGTERM: the teardown is shielded (it finishes), then `down` exits 128 + signal.
    with SignalGuard(on_signal=render.status) as guard:
        ctx = guard.finish(
            lambda: _context(branch, target, engine, program), what="the local cloud has started"
        )
        guard.checkpoint()
        _notes(ctx.notes)
        if not yes and common.stdin_is_terminal():
            _confirm_foreign(ctx)
        with progress(f"down {ctx.names.stack} ({ctx.engine.name} engine)") as sink:
            outcome = guard.shielded(lambda: pool.down(ctx, on_output=sink), what="`down`")

    def human() -> None:
        leaked = "unknown" if outcome.leak_check is not None else str(len(outcome.leaked))
        if outcome.already_absent:
            typer.echo(
                f"stack {outcome.stack}: already gone, nothing to destroy (leaked: {leaked})"
            )
        elif outcome.released:
            typer.echo(
                f"pool stack {outcome.stack} released: wiped, verified empty, back in its pool "
                f"[{outcome.duration_s:.1f} s]"
            )
        else:
            typer.echo(
                f"stack {outcome.stack} destroyed: {common.plural(outcome.deleted, 'resource')} "
                "deleted"
                f"{', stack removed' if outcome.removed else ''}, leaked: {leaked} "
                f"[{outcome.duration_s:.1f} s]"
            )
        if outcome.leak_check is not None:
            render.status(f"warning: {outcome.leak_check}")
        if outcome.refill is not None:
            typer.echo(outcome.refill.describe())

    render.emit(outcome, as_json=as_json, human=human)
    _exit_if_signalled(guard.received, f"`down` finished first (stack {outcome.stack})")


def _confirm_foreign(ctx: StackContext) -> None:
    """Ask before destroying a stack someone else created (its owner is not who runs this)."""
    import os

    from branchenv.errors import StackNotFound
    from branchenv.gitinfo import detect_owner

    stack, program = ctx.names.stack, ctx.program
    try:
        metadata = ctx.engine.metadata(stack=stack, program=program)
    except StackNotFound:
        return
    me = detect_owner(env=os.environ, cwd=ctx.settings.project_dir)
    if metadata is None or metadata.owner == me:
        return
    try:
        resources = ctx.engine.resources(stack=stack, program=program)
    except StackNotFound:
        return
    shown = [f"  {r.type} {r.name}" for r in resources[:20]]
    if len(resources) > 20:
        shown.append(f"  ... and {len(resources) - 20} more")
    common.confirm(
        [
            f"stack {stack} was created by {metadata.owner} (you are {me}); "
            f"`down` destroys {common.plural(len(resources), 'resource')}:",
            *shown,
        ],
        answer=stack,
        noun="stack name",
        command="down",
    )
