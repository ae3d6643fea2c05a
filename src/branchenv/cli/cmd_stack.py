"""`branchenv up | outputs | ls | down`: one branch, one stack."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from branchenv.cli import render
from branchenv.cli.progress import progress
from branchenv.engines import engine_choices

if TYPE_CHECKING:
    from decimal import Decimal

    from branchenv.config import Settings
    from branchenv.provision import StackContext

app = typer.Typer()

BranchOpt = typer.Option(
    None, "--branch", "-b", help="Branch name (default: CI variables, then the git checkout)."
)
TargetOpt = typer.Option(None, "--target", "-t", help="Where resources live: local | aws.")
EngineOpt = typer.Option(
    None,
    "--engine",
    "-e",
    help=f"{engine_choices()} (default: the first of them that runs the program on the target "
    "here).",
)
JsonOpt = typer.Option(False, "--json", help="Print machine-readable JSON.")
AllowSharedOpt = typer.Option(
    [],
    "--allow-shared",
    help="A fixed physical name this stack shares with other branches on purpose (repeatable); "
    "any other fixed name must be derived from the branch's prefix.",
)
ProgramOpt = typer.Option(
    None,
    "--program",
    help="Which configured program: the NAME of a `programs.NAME` settings table (default: the "
    "`program` setting's, or the only one).",
)


def _settings(target: str | None = None, engine: str | None = None) -> Settings:
    from branchenv.config import load_settings

    return load_settings(
        overrides={"default_target": target, "engine": engine},
        flag_names={"default_target": "--target", "engine": "--engine"},
    )


def _context(
    branch: str | None,
    target: str | None,
    engine: str | None,
    program: str | None,
    *,
    start_local_cloud: bool = True,
) -> StackContext:
    from branchenv.provision import resolve

    settings = _settings(target, engine)
    return resolve(
        settings,
        branch=branch,
        target=None,
        engine=None,
        start_local_cloud=start_local_cloud,
        program=program,
    )


def _notes(notes: tuple[str, ...]) -> None:
    for note in notes:
        render.status(f"note: {note}")


@app.command("up")
def up(
    branch: str | None = BranchOpt,
    target: str | None = TargetOpt,
    engine: str | None = EngineOpt,
    ttl: str | None = typer.Option(None, "--ttl", help="Time to live: 90m, 24h, 7d, ..."),
    profile: str = typer.Option("ephemeral", "--profile", help="ephemeral | prodlike"),
    preview_only: bool = typer.Option(
        False,
        "--preview-only",
        help="Show what would change (as `branchenv preview`); change nothing.",
    ),
    allow_shared: list[str] = AllowSharedOpt,
    program: str | None = ProgramOpt,
    use_pool: bool | None = typer.Option(
        None,
        "--pool/--no-pool",
        help="Claim a ready stack from the warm pool (default: the pool setting); see "
        "`branchenv pool`.",
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Create or update this branch's stack (idempotent) and print its outputs.

    On SIGINT/SIGTERM it finishes first (the state then records every resource), then exits
    130/143.
    """
    from branchenv import pool, provision
    from branchenv.harness.signals import SignalGuard
    from branchenv.metadata import format_duration, parse_ttl

    provision.check_profile(profile)  # bad input fails before anything starts
    provision.check_allow_shared(allow_shared)
    if ttl is not None:
        parse_ttl(ttl)
    if preview_only:
        _preview(branch, target, engine, program, ttl=ttl, profile=profile, as_json=as_json)
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

    def human() -> None:
        md = outcome.metadata
        typer.echo(
            f"stack {outcome.stack} (branch {outcome.branch}) is up: {outcome.resource_count} "
            f"resources, expires in {format_duration(md.expires_at - md.created_at)} "
            f"[{outcome.duration_s:.1f} s]"
        )
        _outputs_table(outcome.outputs)

    render.emit(outcome, as_json=as_json, human=human)
    _exit_if_signalled(
        guard.received,
        f"`up` finished first, so the state records every resource of stack {outcome.stack}; "
        f"remove it with `branchenv down --branch {outcome.branch}`",
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


@app.command("preview")
def preview(
    branch: str | None = BranchOpt,
    target: str | None = TargetOpt,
    engine: str | None = EngineOpt,
    ttl: str | None = typer.Option(None, "--ttl", help="Time to live: 90m, 24h, 7d, ..."),
    profile: str = typer.Option("ephemeral", "--profile", help="ephemeral | prodlike"),
    show_same: bool = typer.Option(False, "--show-same", help="Also list unchanged resources."),
    program: str | None = ProgramOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Show what `up` would change, per resource with the changed properties; change nothing."""
    if ttl is not None:
        from branchenv.metadata import parse_ttl

        parse_ttl(ttl)
    _preview(
        branch, target, engine, program, ttl=ttl, profile=profile, as_json=as_json, same=show_same
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
) -> None:
    from branchenv import provision
    from branchenv.engines.base import CHANGE_KINDS

    ctx = _context(branch, target, engine, program)
    _notes(ctx.notes)
    title = f"preview {ctx.names.stack} ({ctx.engine.name} engine, target {ctx.target.name})"
    with progress(title, quiet=False) as sink:
        outcome = provision.preview(ctx, ttl=ttl, profile=profile, on_output=sink)

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


@app.command("outputs")
def outputs(
    branch: str | None = BranchOpt,
    target: str | None = TargetOpt,
    engine: str | None = EngineOpt,
    program: str | None = ProgramOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Print this branch's stack outputs (endpoint, names, ARNs)."""
    from branchenv import pool

    ctx = _context(branch, target, engine, program, start_local_cloud=False)
    values = pool.outputs(ctx)
    render.emit(values, as_json=as_json, human=lambda: _outputs_table(values))


@app.command("ls")
def ls(
    engine: str | None = EngineOpt,
    as_json: bool = JsonOpt,
) -> None:
    """List stacks: branch, owner, age, expires-in, resources, engine, target, account and
    region."""
    from branchenv import provision
    from branchenv.metadata import format_duration

    settings = _settings(None, engine)
    rows = provision.list_stacks(settings, engines=provision.engines_for_listing(settings, engine))

    def dur(seconds: float | None) -> str:
        if seconds is None:
            return ""
        import datetime as dt

        return format_duration(dt.timedelta(seconds=seconds))

    several = len({r.program for r in rows}) > 1

    def human() -> None:
        render.table(
            f"{len(rows)} stack(s)",
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
                    dur(r.age_s),
                    ("expired " if r.expired else "") + dur(r.expires_in_s),
                    _resources(r.resource_count, r.missing),
                    _money(r.cost_so_far, r.cost_unpriced),
                    f"{r.engine} ({r.backend})" if r.backend else r.engine,
                    r.target,
                    _where(r.account, r.region),
                    *([r.program] if several else []),
                )
                for r in rows
            ],
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


@app.command("down")
def down(
    branch: str | None = BranchOpt,
    target: str | None = TargetOpt,
    engine: str | None = EngineOpt,
    program: str | None = ProgramOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Destroy this branch's stack and remove it. A stack already gone is not an error.

    SIGINT/SIGTERM do not stop a teardown: it finishes, then `down` exits 130/143.
    """
    from branchenv import pool
    from branchenv.harness.signals import SignalGuard

    # SIGINT/SIGTERM: the teardown is shielded (it finishes), then `down` exits 128 + signal.
    with SignalGuard(on_signal=render.status) as guard:
        ctx = guard.finish(
            lambda: _context(branch, target, engine, program), what="the local cloud has started"
        )
        guard.checkpoint()
        _notes(ctx.notes)
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
                f"stack {outcome.stack} destroyed: {outcome.deleted} resources deleted"
                f"{', stack removed' if outcome.removed else ''}, leaked: {leaked} "
                f"[{outcome.duration_s:.1f} s]"
            )
        if outcome.leak_check is not None:
            render.status(f"warning: {outcome.leak_check}")

    render.emit(outcome, as_json=as_json, human=human)
    _exit_if_signalled(guard.received, f"`down` finished first (stack {outcome.stack})")
