"""Programs: what describes a stack. Detection (which registered kind a directory holds, where
its project is), the programs the settings configure, and their per-target stack config
templates.

A program's kind is found by asking every registered kind (:data:`branchenv.engines.
PROGRAM_KINDS`) in order; the kind then locates the project (for a Pulumi project, its
``Pulumi.yaml`` with ``main:`` honoured). A template is a YAML file with a ``config:`` map,
flattened to strings; ``${BRANCHENV_LOCAL_ENDPOINT}`` in a value becomes the local cloud's URL.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from branchenv.engines import PROGRAM_KINDS, load_plugins
from branchenv.engines.base import Program
from branchenv.errors import ConfigError, UsageError
from branchenv.targets import TARGET_NAMES

if TYPE_CHECKING:
    from branchenv.config import Settings
    from branchenv.engines.base import Engine
    from branchenv.targets import Target

DEFAULT_PROGRAM = "default"
TEMPLATE_DIR = "stacks"
LOCAL_ENDPOINT_PLACEHOLDER = "${BRANCHENV_LOCAL_ENDPOINT}"


def detect_kind(path: Path) -> str | None:
    """The first registered program kind whose ``detect`` recognises ``path``, else None."""
    load_plugins()
    for kind in PROGRAM_KINDS.values():
        if kind.detect(path):
            return kind.name
    return None


def detect_program(
    path: Path,
    *,
    name: str = DEFAULT_PROGRAM,
    engine: str | None = None,
    project: str | None = None,
    template_dirs: Sequence[Path] = (),
    templates: Mapping[str, Path] | None = None,
    setting: str = "program",
) -> Program:
    """The program at ``path``: its kind, the directory its engine runs, its project name
    (``project`` overrides the kind's) and its templates (``templates`` given per target, else
    looked up under ``stacks/`` of the project dir, then of each of ``template_dirs``).
    ``setting`` names the setting that gave the path, for the message when nothing is there."""
    path = path.resolve()
    # A flag is fixed on the command line; a setting where settings live.
    fix = (
        f"pass `{setting}` the directory holding the program (relative to the project)"
        if setting.startswith("-")
        else f"set `{setting}` in [tool.branchenv] (or BRANCHENV_PROGRAM) to the directory "
        "holding the program"
    )
    if not path.is_dir():
        raise UsageError(f"{setting}: program directory {path} does not exist", hint=fix)
    kind_name = detect_kind(path)
    if kind_name is None:
        kinds = "; ".join(f"{k.name}: {k.summary}" for k in PROGRAM_KINDS.values())
        raise UsageError(
            f"{setting}: no program found in {path}: expected one of {kinds}", hint=fix
        )
    kind = PROGRAM_KINDS[kind_name]
    layout = kind.layout(path)
    found: dict[str, Path] = {}
    if kind.template_file is not None:
        folders = [layout.project_dir / TEMPLATE_DIR, *(d / TEMPLATE_DIR for d in template_dirs)]
        for target in TARGET_NAMES:
            for folder in folders:
                candidate = folder / kind.template_file(target)
                if candidate.is_file():
                    found[target] = candidate
                    break
    for target, file in (templates or {}).items():
        if not file.is_file():
            raise UsageError(
                f"the {target} template {file} of program {name!r} does not exist; fix its "
                f"`templates` entry in [tool.branchenv] (or create the file)"
            )
        found[target] = file
    return Program(
        name=name,
        path=layout.path,
        kind=kind_name,
        project=project or layout.project,
        project_dir=layout.project_dir,
        engine=engine,
        templates=found,
    )


def default_program(settings: Settings) -> Program:
    """The program the settings' ``program`` names (the project dir itself when unset)."""
    return detect_program(
        settings.program_path,
        engine=settings.engine,
        project=settings.project,
        template_dirs=(settings.project_dir,),
    )


def configured_programs(settings: Settings) -> tuple[Program, ...]:
    """Every program the settings configure: the default one (``program``; when unset and
    ``programs`` names others, only if the project dir itself holds a program), then each of
    ``[tool.branchenv.programs.<name>]``. Names and project names are unique."""
    programs: list[Program] = []
    if (
        settings.program is not None
        or not settings.programs
        or detect_kind(settings.project_dir) is not None
    ):
        programs.append(default_program(settings))
    for entry in settings.programs:
        programs.append(
            detect_program(
                settings.project_dir / entry.path,
                name=entry.name,
                engine=entry.engine or settings.engine,
                project=entry.project,
                template_dirs=(settings.project_dir,),
                templates={t: settings.project_dir / f for t, f in entry.templates},
                setting=f"programs.{entry.name}.path",
            )
        )
    seen: dict[str, Program] = {}
    for program in programs:
        other = seen.get(program.project)
        if other is not None:
            fix = (
                "`project`"
                if program.name == DEFAULT_PROGRAM
                else (f"`project` in [tool.branchenv.programs.{program.name}]")
            )
            raise ConfigError(
                f"programs {other.name!r} and {program.name!r} both have project name "
                f"{program.project!r}: their stacks would collide; set {fix} to another name"
            )
        seen[program.project] = program
    return tuple(programs)


def select_program(settings: Settings, name: str | None = None) -> Program:
    """The program a command acts on: ``name`` (``--program``), else the default one, else the
    only one configured."""
    programs = configured_programs(settings)
    names = ", ".join(p.name for p in programs)
    if name is not None:
        for program in programs:
            if program.name == name:
                return program
        raise UsageError(
            f"--program {name!r} is not a configured program; configured: {names}. Pass one of "
            f"those, or add [tool.branchenv.programs.{name}] with its `path` to pyproject.toml "
            f"(or [programs.{name}] to branchenv.toml)"
        )
    for program in programs:
        if program.name == DEFAULT_PROGRAM:
            return program
    if len(programs) == 1:
        return programs[0]
    raise UsageError(f"several programs are configured ({names}): pick one with `--program NAME`")


def read_template(program: Program, target: Target) -> dict[str, str]:
    """The program's stack config template for ``target``, flattened to strings (maps and lists
    as JSON), with the local cloud's endpoint filled in; {} when there is none."""
    import yaml

    path = program.templates.get(target.name)
    if path is None:
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"{path}: not valid YAML ({type(exc).__name__}); fix the template"
        ) from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot be read ({exc.strerror}); check the template") from None
    config = data.get("config") if isinstance(data, dict) else None
    if config is None:
        config = {}
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
    return flat


def listing_pairs(settings: Settings, engines: Sequence[Engine]) -> list[tuple[Program, Engine]]:
    """Every (program, engine) whose stacks a listing (ls, reap, cost) reads: each configured
    program with each of ``engines`` that runs its kind."""
    from branchenv.engines import engine_spec

    return [
        (program, engine)
        for program in configured_programs(settings)
        for engine in engines
        if program.kind in engine_spec(engine.name).program_kinds
    ]
