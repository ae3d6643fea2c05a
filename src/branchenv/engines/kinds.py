"""The built-in program kinds: how to recognise a Pulumi project and a Terraform root module in
a directory, and where each keeps its project name and stack config templates."""

from __future__ import annotations

from pathlib import Path

from branchenv.engines.base import ProgramLayout
from branchenv.errors import UsageError

PULUMI_PROJECT_FILES = ("Pulumi.yaml", "Pulumi.yml")


def _pulumi_file(folder: Path) -> Path | None:
    for name in PULUMI_PROJECT_FILES:
        if (folder / name).is_file():
            return folder / name
    return None


def _read_pulumi_project(path: Path) -> tuple[str, str | None]:
    """``(name, main)`` of a Pulumi.yaml."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not valid YAML ({type(exc).__name__}); fix the file") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot be read ({exc.strerror}); check it") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: must be a YAML map with `name:` and `runtime:`; fix the file")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise UsageError(f"{path}: no project `name:`; add one")
    main = data.get("main")
    if main is not None and (not isinstance(main, str) or not main.strip()):
        raise UsageError(f"{path}: `main:` must be a relative directory such as `src/`")
    return name, main


def _pulumi_project_for(path: Path) -> tuple[Path, Path] | None:
    """``(project file, program dir)`` for a directory that is a Pulumi program: it holds a
    Pulumi.yaml (whose ``main:`` then names the program dir), or an ancestor's Pulumi.yaml
    names it as ``main:`` (this repository's layout: top-level Pulumi.yaml, ``main: infra/aws/``)."""
    path = path.resolve()
    own = _pulumi_file(path)
    if own is not None:
        _, main = _read_pulumi_project(own)
        return own, (path / main).resolve() if main else path
    for folder in path.parents:
        found = _pulumi_file(folder)
        if found is None:
            continue
        _, main = _read_pulumi_project(found)
        if main and (folder / main).resolve() == path:
            return found, path
        return None  # the nearest project above is another program's
    return None


def is_pulumi_program(path: Path) -> bool:
    """True for a Pulumi program directory (see :func:`_pulumi_project_for`)."""
    return path.is_dir() and _pulumi_project_for(path) is not None


def locate_pulumi_program(path: Path) -> ProgramLayout:
    """The layout of a Pulumi program: the ``main:`` dir, the project ``name:`` and the dir of
    its Pulumi.yaml."""
    found = _pulumi_project_for(path)
    if found is None:
        raise UsageError(f"{path}: no Pulumi.yaml here or above naming it as `main:`")
    project_file, run_dir = found
    name, _ = _read_pulumi_project(project_file)
    return ProgramLayout(path=run_dir, project=name, project_dir=project_file.parent)


def pulumi_template_file(target: str) -> str:
    """The stack config template of a target: ``stacks/Pulumi.<target>.yaml``."""
    return f"Pulumi.{target}.yaml"


def is_terraform_module(path: Path) -> bool:
    """True for a directory holding ``*.tf`` files (a Terraform/OpenTofu root module)."""
    return path.is_dir() and any(p.is_file() for p in path.glob("*.tf"))


def locate_terraform_module(path: Path) -> ProgramLayout:
    """A root module is its own project dir; its project name is the dir's name unless the
    settings give one."""
    path = path.resolve()
    return ProgramLayout(path=path, project=path.name, project_dir=path)
