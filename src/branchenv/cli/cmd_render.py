"""``branchenv render``: a Kubernetes program's manifests for a branch, written and validated."""

from __future__ import annotations

from pathlib import Path

from branchenv.cli import render as output
from branchenv.cli.options import epilog, new_app, option
from branchenv.render import DEFAULT_K8S_VERSION

app = new_app()


BranchOpt = option("--branch")
ProgramOpt = option("--program", default_help="default: infra/k8s")
OutOpt = option("--out", default_help="a directory; default: <state dir>/manifests/<stack>")
VersionOpt = option("--k8s-version", DEFAULT_K8S_VERSION)
ProfileOpt = option("--profile", default_help="default: the stack template's, else ephemeral")
TtlOpt = option("--ttl", default_help="for the janitor annotations; default: default_ttl")
ConfigOpt = option("--config", [], default_help="over stacks/Pulumi.k8s.yaml")
JsonOpt = option("--json", False)


@app.command("render", epilog=epilog())
def render(
    branch: str | None = BranchOpt,
    program: Path | None = ProgramOpt,
    out: Path | None = OutOpt,
    k8s_version: str = VersionOpt,
    profile: str | None = ProfileOpt,
    ttl: str | None = TtlOpt,
    config: list[str] = ConfigOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Render this branch's Kubernetes manifests (one YAML per object) and validate them
    against the Kubernetes schema; exit 1 when any manifest fails validation."""
    import os

    from branchenv import render as core
    from branchenv.cli import common
    from branchenv.config import load_settings, stack_ttl
    from branchenv.errors import OperationFailed
    from branchenv.gitinfo import current_commit, detect_branch, detect_owner
    from branchenv.naming import names_for
    from branchenv.programs import detect_program

    settings = load_settings()
    pairs = core.parse_config_pairs(config)  # bad input fails before anything runs
    version = core.check_k8s_version(k8s_version)
    stack_ttl(settings, ttl)
    chosen_ttl = ttl or settings.default_ttl
    root = settings.project_dir
    info = detect_branch(branch, env=os.environ, cwd=root)
    names = names_for(info.name)
    program_dir = root / (program if program is not None else Path(core.DEFAULT_PROGRAM))
    detect_program(program_dir, setting="--program")
    out_dir = core.check_out_dir(
        out if out is not None else settings.state_path / "manifests" / names.stack
    )
    stack_config = {**core.load_stack_template(root / core.STACK_TEMPLATE), **pairs}

    result = core.render(
        program_dir,
        branch=info.name,
        out_dir=out_dir.resolve(),
        profile=profile,
        k8s_version=version,
        config=stack_config,
        ttl=chosen_ttl,
        owner=detect_owner(env=os.environ, cwd=root),
        commit=current_commit(root),
    )
    document = {
        "stack": result.stack,
        "branch": result.branch,
        "out_dir": result.out_dir,
        "k8s_version": result.k8s_version,
        "files": result.files,
        "objects": result.objects,
        "errors": [str(e) for e in result.errors],
        "outputs": result.outputs,
    }

    def human() -> None:
        output.table(
            f"{common.plural(len(result.files), 'manifest')} for {result.stack} in {result.out_dir}",
            ("file", "kind", "name"),
            ((o.file.name, o.kind, o.name) for o in result.objects),
        )
        for issue in result.errors:
            output.status(f"invalid: {issue}")
        verdict = "all valid" if result.ok else common.plural(len(result.errors), "error")
        output.status(f"Kubernetes {result.k8s_version} schema: {verdict}")

    output.emit(document, as_json=as_json, human=human)
    if not result.ok:
        raise OperationFailed(
            f"{common.plural(len(result.errors), 'manifest problem')} for Kubernetes {result.k8s_version} "
            f"(first: {result.errors[0]}); fix the program in {program_dir}"
        )
