"""Locate a program's Pulumi project (its ``Pulumi.yaml``) and read its name."""

from __future__ import annotations

from pathlib import Path

from branchenv.errors import UsageError


def find_project_file(program: Path) -> Path:
    """The ``Pulumi.yaml`` of ``program``: in the program dir or the nearest parent whose
    ``main`` points at it (the layout of this repository: top-level Pulumi.yaml, ``main:
    infra/aws/``)."""
    program = program.resolve()
    if not program.is_dir():
        raise UsageError(
            f"program directory {program} does not exist; set `program` in [tool.branchenv] "
            "(or BRANCHENV_PROGRAM) to the directory holding the Pulumi program"
        )
    for folder in (program, *program.parents):
        for name in ("Pulumi.yaml", "Pulumi.yml"):
            candidate = folder / name
            if candidate.is_file():
                return candidate
    raise UsageError(
        f"no Pulumi.yaml found in {program} or above it; create one (`name:`, `runtime: python`)"
    )


def project_name(program: Path) -> str:
    """The ``name:`` of the program's Pulumi project."""
    import yaml

    path = find_project_file(program)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: not valid YAML ({exc}); fix the file") from exc
    name = data.get("name") if isinstance(data, dict) else None
    if not isinstance(name, str) or not name:
        raise UsageError(f"{path}: no project `name:`; add one")
    return name
