"""The engine registry: which engines and program kinds exist, and the one factory for engines.

Nothing outside ``engines/`` names a particular engine: help texts, config validation,
``metadata.engine``, ``choose_engine``, the listings (``ls``, ``reap``, ``cost``), the reaper's
checks and the contract suite all read :data:`ENGINES` and :data:`PROGRAM_KINDS`.

An engine is an :class:`EngineSpec`: its name, how to import it (lazily: ``pulumi`` and boto3
are heavy), whether it can run here (and why not), whether it runs on the local target only,
whether its stack listing sees every machine's stacks, and which program kinds it runs. The
class that ``load`` returns is built with ``cls.from_settings(settings=..., target=...)``.

Other packages add engines and program kinds through the ``branchenv.plugins`` entry-point
group: each entry point is a callable, called once with no arguments, that calls
:func:`register_engine` / :func:`register_program_kind`.
"""

from __future__ import annotations

import dataclasses
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from branchenv import extras
from branchenv.engines import kinds
from branchenv.engines.base import Engine, EngineSettings, ProgramLayout
from branchenv.errors import EngineUnavailable, UsageError

if TYPE_CHECKING:
    from branchenv.targets import Target

PLUGIN_GROUP = "branchenv.plugins"


@dataclasses.dataclass(frozen=True)
class EngineSpec:
    """One engine in the registry.

    ``load`` imports the implementation and returns its class (built with
    ``from_settings(settings=, target=)``). ``available`` returns None when the engine can run
    on this machine, else the reason. ``shared_state``: whether its stack listing sees every
    machine's stacks (a bool, or decided from the settings: a shared backend URL), which orphan
    sweeps on AWS need. ``program_kinds``: the :data:`PROGRAM_KINDS` it runs.
    """

    name: str
    load: Callable[[], type]
    available: Callable[[], str | None]
    local_only: bool
    shared_state: bool | Callable[[EngineSettings], bool]
    program_kinds: frozenset[str]
    summary: str

    def shares_state(self, settings: EngineSettings) -> bool:
        """True when this engine's listing (under ``settings``) sees every machine's stacks."""
        if callable(self.shared_state):
            return bool(self.shared_state(settings))
        return self.shared_state


@dataclasses.dataclass(frozen=True)
class ProgramKind:
    """One kind of program: ``detect(dir)`` is true when the directory holds one; ``locate(dir)``
    says where its project is (the dir to run, the project name, the project dir);
    ``template_file(target)`` names a target's stack config template under ``stacks/`` (None:
    the kind has no templates)."""

    name: str
    detect: Callable[[Path], bool]
    summary: str
    locate: Callable[[Path], ProgramLayout] | None = None
    template_file: Callable[[str], str] | None = None

    def layout(self, path: Path) -> ProgramLayout:
        """Where the program at ``path`` lives (its own dir, named after it, by default)."""
        if self.locate is not None:
            return self.locate(path)
        resolved = path.resolve()
        return ProgramLayout(path=resolved, project=resolved.name, project_dir=resolved)


ENGINES: dict[str, EngineSpec] = {}
"""Every registered engine by name, in registration order (the order of preference)."""

PROGRAM_KINDS: dict[str, ProgramKind] = {}
"""Every registered program kind by name, in registration order (the order of detection)."""

_CACHE: dict[tuple[Any, ...], Engine] = {}
_LOCK = threading.RLock()
_plugins_loaded = False


def register_engine(spec: EngineSpec, *, replace: bool = False) -> EngineSpec:
    """Add ``spec`` to the registry (``replace``: over an engine of the same name)."""
    with _LOCK:
        if spec.name in ENGINES and not replace:
            raise ValueError(f"an engine named {spec.name!r} is already registered")
        ENGINES[spec.name] = spec
        _drop_cached(spec.name)
    return spec


def unregister_engine(name: str) -> None:
    """Remove the engine called ``name`` (and its cached instances); unknown names are ignored."""
    with _LOCK:
        ENGINES.pop(name, None)
        _drop_cached(name)


def register_program_kind(kind: ProgramKind, *, replace: bool = False) -> ProgramKind:
    """Add a program kind (``replace``: over one of the same name)."""
    with _LOCK:
        if kind.name in PROGRAM_KINDS and not replace:
            raise ValueError(f"a program kind named {kind.name!r} is already registered")
        PROGRAM_KINDS[kind.name] = kind
    return kind


def unregister_program_kind(name: str) -> None:
    """Remove the program kind called ``name``; unknown names are ignored."""
    with _LOCK:
        PROGRAM_KINDS.pop(name, None)


def _drop_cached(name: str) -> None:
    for key in [k for k in _CACHE if k[0] == name]:
        del _CACHE[key]


def load_plugins() -> None:
    """Call every ``branchenv.plugins`` entry point once (they register engines and kinds)."""
    global _plugins_loaded
    with _LOCK:
        if _plugins_loaded:
            return
        _plugins_loaded = True
        from importlib.metadata import entry_points

        for entry in entry_points(group=PLUGIN_GROUP):
            try:
                register = entry.load()
                register()
            except Exception as exc:
                raise UsageError(
                    f"the branchenv plugin {entry.name!r} ({entry.value}) failed to load: "
                    f"{type(exc).__name__}: {exc}; fix or uninstall the package that provides it"
                ) from exc


def engine_names() -> tuple[str, ...]:
    """The registered engine names, in order of preference."""
    load_plugins()
    return tuple(ENGINES)


def program_kind_names() -> tuple[str, ...]:
    """The registered program kinds, in order of detection."""
    load_plugins()
    return tuple(PROGRAM_KINDS)


def engine_spec(name: str) -> EngineSpec:
    """The spec of engine ``name``; a wrong name lists the valid ones (exit 2)."""
    load_plugins()
    spec = ENGINES.get(name)
    if spec is None:
        raise UsageError(
            f"unknown engine {name!r}. Valid engines: {', '.join(ENGINES)} "
            "(pass `--engine NAME` or set BRANCHENV_ENGINE)"
        )
    return spec


def engines_for_kind(kind: str) -> list[EngineSpec]:
    """The engines that run programs of ``kind``, in order of preference."""
    load_plugins()
    return [spec for spec in ENGINES.values() if kind in spec.program_kinds]


def engine_choices() -> str:
    """``pulumi | inprocess | ...``: the engine names for a flag's help text."""
    return " | ".join(engine_names())


def engines_help() -> str:
    """One line per engine for help texts: name, what it is, and why it cannot run here."""
    lines = []
    for spec in (engine_spec(n) for n in engine_names()):
        reason = spec.available()
        lines.append(
            f"{spec.name}: {spec.summary}" + (f" (not available here: {reason})" if reason else "")
        )
    return "; ".join(lines)


def check_available(name: str) -> None:
    """Raise :class:`EngineUnavailable` (exit 2) when engine ``name`` cannot run here: its
    reason (a missing CLI, a missing extra naming its pip command) and which engines can.
    Commands call it before their first side effect (starting the local cloud)."""
    spec = engine_spec(name)
    reason = spec.available()
    if reason is not None:
        others = [
            other
            for other in ENGINES.values()
            if other.name != name
            and other.program_kinds & spec.program_kinds
            and other.available() is None
        ]
        alternatives = ", ".join(
            f"`--engine {o.name}`" + (" with `--target local`" if o.local_only else "")
            for o in others
        )
        raise EngineUnavailable(
            f"the {name} engine cannot run here: {reason}"
            + (f"; or use {alternatives}" if alternatives else "")
        )


def get_engine(name: str, *, settings: EngineSettings, target: Target | None = None) -> Engine:
    """The engine called ``name`` for ``settings`` (and ``target``), built once per state dir,
    backend and target. A wrong name lists the valid ones; one that cannot run here says why
    and which engines can (both exit 2)."""
    spec = engine_spec(name)
    key = (name, str(settings.state_path), settings.effective_backend_url, target)
    with _LOCK:
        cached = _CACHE.get(key)
        if cached is not None:
            return cached
    check_available(name)
    engine: Engine = spec.load().from_settings(settings=settings, target=target)  # type: ignore[attr-defined]
    with _LOCK:
        return _CACHE.setdefault(key, engine)


def clear_engine_cache() -> None:
    """Forget every built engine (tests that change the environment engines read)."""
    with _LOCK:
        _CACHE.clear()


# --- the built-in program kinds and engines ---------------------------------------------------


register_program_kind(
    ProgramKind(
        name="pulumi",
        detect=kinds.is_pulumi_program,
        summary="a Pulumi project: Pulumi.yaml (its `main:` honoured) and the program it runs",
        locate=kinds.locate_pulumi_program,
        template_file=kinds.pulumi_template_file,
    )
)
register_program_kind(
    ProgramKind(
        name="terraform",
        detect=kinds.is_terraform_module,
        summary="a Terraform/OpenTofu root module: a directory of *.tf files",
        locate=kinds.locate_terraform_module,
    )
)


def _load_pulumi() -> type:
    from branchenv.engines.pulumi import PulumiEngine

    return PulumiEngine


def _pulumi_available() -> str | None:
    # The Python SDK (the `[pulumi]` extra) first: without it the CLI cannot run the program.
    reason = extras.missing("pulumi")
    if reason is not None:
        return reason
    if shutil.which("pulumi") is None:
        return (
            "no `pulumi` CLI on PATH (install it: `curl -fsSL https://get.pulumi.com | sh`, then "
            "put ~/.pulumi/bin on PATH)"
        )
    return None


def _pulumi_shared(settings: EngineSettings) -> bool:
    return not settings.effective_backend_url.startswith("file://")


def _load_inprocess() -> type:
    from branchenv.engines.inprocess.engine import InProcessEngine

    return InProcessEngine


def _inprocess_available() -> str | None:
    # The SDK's mock runtime runs the program; the local cloud (moto) holds what it creates.
    return extras.missing("pulumi") or extras.missing("local")


def _load_terraform() -> type:
    from branchenv.engines.terraform.engine import TerraformEngine

    return TerraformEngine


def _terraform_available() -> str | None:
    if shutil.which("terraform") is None and shutil.which("tofu") is None:
        return (
            "neither `terraform` nor `tofu` is on PATH (install Terraform >= 1.5 or OpenTofu; "
            'set terraform_binary = "tofu" for OpenTofu)'
        )
    return None


def _terraform_shared(settings: EngineSettings) -> bool:
    # The S3 backends (the local cloud's bucket, a team bucket) are read by every checkout.
    return settings.terraform_backend != "local"


register_engine(
    EngineSpec(
        name="pulumi",
        load=_load_pulumi,
        available=_pulumi_available,
        local_only=False,
        shared_state=_pulumi_shared,
        program_kinds=frozenset({"pulumi"}),
        summary="the real Pulumi engine through its Automation API (needs the `pulumi` CLI)",
    )
)
register_engine(
    EngineSpec(
        name="inprocess",
        load=_load_inprocess,
        available=_inprocess_available,
        local_only=True,
        shared_state=False,
        program_kinds=frozenset({"pulumi"}),
        summary="a Pulumi program on the SDK's mock runtime, materialized on the local cloud",
    )
)
register_engine(
    EngineSpec(
        name="terraform",
        load=_load_terraform,
        available=_terraform_available,
        local_only=False,
        shared_state=_terraform_shared,
        program_kinds=frozenset({"terraform"}),
        summary="the real terraform (or tofu) CLI running a Terraform root module",
    )
)

__all__ = [
    "ENGINES",
    "PLUGIN_GROUP",
    "PROGRAM_KINDS",
    "Engine",
    "EngineSpec",
    "ProgramKind",
    "ProgramLayout",
    "check_available",
    "clear_engine_cache",
    "engine_choices",
    "engine_names",
    "engine_spec",
    "engines_for_kind",
    "engines_help",
    "get_engine",
    "load_plugins",
    "program_kind_names",
    "register_engine",
    "register_program_kind",
    "unregister_engine",
    "unregister_program_kind",
]
