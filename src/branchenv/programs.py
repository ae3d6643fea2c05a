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
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from branchenv.engines import PROGRAM_KINDS, load_plugins
from branchenv.engines.base import Program
from branchenv.errors import UsageError
from branchenv.targets import TARGET_NAMES

if TYPE_CHECKING:
    from branchenv.config import Settings
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
    setting: str = "program",
) -> Program:
    """The program at ``path``: its kind, the directory its engine runs, its project name
    (``project`` overrides the kind's) and its templates (looked up under ``stacks/`` of the
    project dir, then of each of ``template_dirs``). ``setting`` names the setting that gave the
    path, for the message when nothing is there."""
    path = path.resolve()
    if not path.is_dir():
        raise UsageError(
            f"program directory {path} does not exist; set `{setting}` in [tool.branchenv] "
            "(or BRANCHENV_PROGRAM) to the directory holding the program"
        )
    kind_name = detect_kind(path)
    if kind_name is None:
        kinds = "; ".join(f"{k.name}: {k.summary}" for k in PROGRAM_KINDS.values())
        raise UsageError(
            f"no program found in {path}: expected one of {kinds}. Set `{setting}` in "
            "[tool.branchenv] (or BRANCHENV_PROGRAM) to the program's directory"
        )
    kind = PROGRAM_KINDS[kind_name]
    layout = kind.layout(path)
    templates: dict[str, Path] = {}
    if kind.template_file is not None:
        folders = [layout.project_dir / TEMPLATE_DIR, *(d / TEMPLATE_DIR for d in template_dirs)]
        for target in TARGET_NAMES:
            for folder in folders:
                candidate = folder / kind.template_file(target)
                if candidate.is_file():
                    templates[target] = candidate
                    break
    return Program(
        name=name,
        path=layout.path,
        kind=kind_name,
        project=project or layout.project,
        project_dir=layout.project_dir,
        engine=engine,
        templates=templates,
    )


def default_program(settings: Settings) -> Program:
    """The program the settings' ``program`` names (relative to the project directory)."""
    return detect_program(
        settings.program_path,
        engine=settings.engine,
        template_dirs=(settings.project_dir,),
    )


def configured_programs(settings: Settings) -> tuple[Program, ...]:
    """Every program the settings configure."""
    return (default_program(settings),)


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
