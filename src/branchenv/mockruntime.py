"""Run a Pulumi Python program on the SDK's mock runtime (``pulumi.runtime.set_mocks``).

Engine-neutral: the ``inprocess`` engine materializes what a program declares through it, and
``branchenv render`` turns a Kubernetes program's declarations into manifests through it.

The SDK resolves dependencies exactly as under the real engine: a resource is registered (and
our ``new_resource`` called) once every input it depends on is known, so whatever
``new_resource`` returns for one resource flows into the inputs of the next. The runtime's
settings are process-global, so runs are serialized and each gets a fresh thread (fresh context
variables, fresh event loop) and a fresh root stack resource.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import keyword
import runpy
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from branchenv import extras
from branchenv.errors import BranchenvError, EngineError, UsageError, one_line

_RUN_LOCK = threading.Lock()
_PRELOADS: list[threading.Thread] = []
_PRELOADS_LOCK = threading.Lock()


@dataclasses.dataclass(frozen=True)
class Registration:
    """One resource registration as the SDK sends it to the engine."""

    type: str
    name: str
    urn: str
    inputs: dict[str, Any]
    provider: str  # "<provider urn>::<provider id>" or "" for the default provider
    parent: str
    dependencies: tuple[str, ...]
    custom: bool
    delete_before_replace: bool = False
    ignore_changes: tuple[str, ...] = ()
    replace_on_changes: tuple[str, ...] = ()
    protect: bool = False
    retain_on_delete: bool = False


NewResource = Callable[[Registration], tuple[str, dict[str, Any]]]
"""Called for each resource: returns its physical id and its output state."""


@dataclasses.dataclass(frozen=True)
class ProgramRun:
    """What one run of the program produced: exported outputs and registrations in order."""

    outputs: dict[str, Any]
    registrations: tuple[Registration, ...]
    secret_outputs: frozenset[str] = frozenset()
    """Names of exported outputs the program marked secret (never to be shown or stored)."""


def sdk_modules(resource_types: Iterable[str]) -> list[tuple[str, str]]:
    """(module, class) of each Pulumi type token in its Python SDK, by the SDKs' layout:
    ``aws:s3/bucket:Bucket`` -> (``pulumi_aws.s3``, ``Bucket``), ``kubernetes:core/v1:Namespace``
    -> (``pulumi_kubernetes.core.v1``, ``Namespace``); a keyword gets a trailing ``_``
    (``lambda_``). Tokens of another shape (``pulumi:providers:aws``) are left out."""
    found: dict[tuple[str, str], None] = {}
    for token in resource_types:
        parts = token.split(":")
        if len(parts) != 3 or not all(parts) or parts[0] == "pulumi":
            continue
        package, module, name = parts
        segments = module.split("/")
        if len(segments) > 1 and segments[-1] == name[:1].lower() + name[1:]:
            segments = segments[:-1]  # aws:s3/bucket:Bucket: the file, not a module
        if segments == ["index"]:
            segments = []
        path = [f"pulumi_{package.replace('-', '_')}"]
        path += [f"{seg}_" if keyword.iskeyword(seg) else seg for seg in segments]
        found[(".".join(path), name)] = None
    return list(found)


def preload(resource_types: Iterable[str]) -> threading.Thread:
    """Import, on a daemon thread, what a run of a program declaring ``resource_types`` imports
    first: the SDK's runtime and each type's class in its provider SDK (:func:`sdk_modules`;
    provider SDKs load their modules lazily, on first use of a class: most of a first run's
    time). For a caller that has something else to wait on first (the inprocess engine's
    existence check of a stack's resources). The next :func:`run_program` waits for it (a
    lazily loaded module is not safe to load from two threads at once on Python 3.11); what
    fails to import here is left to that run, which reports it."""
    wanted = sdk_modules(resource_types)

    def work() -> None:
        with contextlib.suppress(Exception):
            _import_sdk()
        for module, name in wanted:
            with contextlib.suppress(Exception):
                getattr(importlib.import_module(module), name)

    thread = threading.Thread(target=work, name="branchenv-sdk-preload", daemon=True)
    with _PRELOADS_LOCK:
        _PRELOADS.append(thread)
    thread.start()
    return thread


def _import_sdk() -> None:
    """The SDK modules :func:`_run_in_thread` uses."""
    import pulumi  # noqa: F401
    from pulumi.runtime import mocks, rpc, settings, stack, sync_await  # noqa: F401
    from pulumi.runtime.proto import resource_pb2  # noqa: F401


def _wait_for_preloads() -> None:
    with _PRELOADS_LOCK:
        running, _PRELOADS[:] = list(_PRELOADS), []
    for thread in running:
        thread.join()


def run_program(
    *,
    program_dir: Path,
    project: str,
    stack: str,
    config: Mapping[str, str],
    new_resource: NewResource,
    preview: bool,
) -> ProgramRun:
    """Execute ``program_dir/__main__.py`` under mocks; return its exports and registrations."""
    main = program_dir / "__main__.py"
    if not main.is_file():
        raise EngineError(
            f"no Pulumi program at {main}; set `program` in [tool.branchenv] or pass --program"
        )
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["run"] = _run_in_thread(
                main, program_dir, project, stack, dict(config), new_resource, preview
            )
        except BaseException as exc:  # handed to the caller's thread below
            result["error"] = exc

    with _RUN_LOCK:
        _wait_for_preloads()
        thread = threading.Thread(target=target, name=f"pulumi-mocks-{stack}", daemon=True)
        thread.start()
        thread.join()
    if "error" in result:
        raise result["error"]
    run: ProgramRun = result["run"]
    return run


def _run_in_thread(
    main: Path,
    program_dir: Path,
    project: str,
    stack: str,
    config: dict[str, str],
    new_resource: NewResource,
    preview: bool,
) -> ProgramRun:
    import pulumi
    from pulumi import config as pconfig
    from pulumi.runtime import mocks as pmocks
    from pulumi.runtime import settings as psettings
    from pulumi.runtime.config import set_all_config
    from pulumi.runtime.stack import run_pulumi_func
    from pulumi.runtime.sync_await import _ensure_event_loop, _sync_await

    registrations: list[Registration] = []
    reg_lock = threading.Lock()

    class _Mocks(pmocks.Mocks):
        def new_resource(self, args: Any) -> tuple[str | None, dict[str, Any]]:
            raise AssertionError("replaced by the monitor below")

        def call(self, args: Any) -> tuple[dict[str, Any], list[tuple[str, str]]]:
            if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
                return {"accountId": "123456789012", "arn": "", "userId": ""}, []
            if args.token == "aws:index/getRegion:getRegion":
                return {"name": config.get("aws:region", "us-east-1")}, []
            raise EngineError(
                f"the inprocess engine does not support the data source {args.token!r}; "
                "use `--engine pulumi` or drop the lookup from the program"
            )

    class _Monitor(pmocks.MockMonitor):
        def RegisterResource(self, request: Any) -> Any:
            from pulumi.runtime import rpc
            from pulumi.runtime.proto import resource_pb2

            urn = self.make_urn(request.parent, request.type, request.name)
            if request.type == "pulumi:pulumi:Stack":
                return resource_pb2.RegisterResourceResponse(urn=urn)
            _ensure_event_loop()  # type: ignore[no-untyped-call]
            inputs = rpc.deserialize_properties(request.object)
            reg = Registration(
                type=request.type,
                name=request.name,
                urn=urn,
                inputs=dict(inputs),
                provider=request.provider,
                parent=request.parent,
                dependencies=tuple(request.dependencies),
                custom=bool(request.custom),
                delete_before_replace=bool(request.deleteBeforeReplace),
                ignore_changes=tuple(request.ignoreChanges),
                replace_on_changes=tuple(request.replaceOnChanges),
                protect=bool(request.protect),
                retain_on_delete=bool(request.retainOnDelete),
            )
            id_, state = new_resource(reg)
            with reg_lock:
                registrations.append(reg)
            obj = _sync_await(rpc.serialize_properties(state, {}))
            self.resources[urn] = pmocks.MockMonitor.ResourceRegistration(urn, id_, state)
            return resource_pb2.RegisterResourceResponse(urn=urn, id=id_, object=obj)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    saved_path = list(sys.path)
    saved_modules = set(sys.modules)
    try:
        psettings.ROOT.set(None)
        mocks = _Mocks()
        pmocks.set_mocks(
            mocks, project=project, stack=stack, preview=preview, monitor=_Monitor(mocks)
        )
        set_all_config(config)
        psettings.SETTINGS.rpc_manager.clear()
        psettings.SETTINGS.outputs.clear()
        sys.path.insert(0, str(program_dir))

        def program() -> None:
            runpy.run_path(str(main), run_name="__main__")

        _sync_await(run_pulumi_func(program))
        root = psettings.get_root_resource()
        exported: dict[str, Any] = dict(getattr(root, "outputs", {}) or {})
        outputs = _sync_await(pulumi.Output.from_input(exported).future()) or {}
        secret = frozenset(
            name
            for name, value in exported.items()
            if isinstance(value, pulumi.Output) and _sync_await(value.is_secret())
        )
        return ProgramRun(
            outputs=dict(outputs), registrations=tuple(registrations), secret_outputs=secret
        )
    except pconfig.ConfigMissingError as exc:
        # pulumi's own text says `pulumi config set`: this engine runs without that CLI, and
        # the stack's config comes from the target's template
        key = exc.key
        raise UsageError(
            f"the program needs config {key!r}{_where(exc, program_dir)}, which is not set",
            hint=f"add `{key}: <value>` under `config:` in the target's stack template "
            "(stacks/Pulumi.local.yaml for the local target, stacks/Pulumi.aws.yaml for aws)",
        ) from None
    except pulumi.RunError as exc:
        raise EngineError(f"the program failed: {one_line(exc, limit=300)}") from exc
    except BranchenvError:
        raise
    except ImportError as exc:
        # A program importing an extra's package (pulumi_kubernetes) on an install without it.
        missing = extras.from_import_error(exc, f"the program {program_dir.name!r}")
        if missing is not None:
            raise missing from None
        raise EngineError(
            f"the program failed{_where(exc, program_dir)}: {one_line(exc, limit=300)}; fix the "
            "program and re-run"
        ) from exc
    except Exception as exc:
        # A bug in the program itself (a NameError, a failed apply): one line, where it is.
        raise EngineError(
            f"the program failed{_where(exc, program_dir)}: {one_line(exc, limit=300)}; fix the "
            "program and re-run"
        ) from exc
    finally:
        sys.path[:] = saved_path
        _forget_program_modules(program_dir, saved_modules)
        psettings.ROOT.set(None)
        loop.close()
        asyncio.set_event_loop(None)


def _where(exc: BaseException, program_dir: Path) -> str:
    """`` at file:line`` of the innermost traceback frame inside the program's directory."""
    import traceback

    root = str(program_dir.resolve())
    found = ""
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename.startswith(root):
            found = f" at {Path(frame.filename).name}:{frame.lineno}"
    return found


def _forget_program_modules(program_dir: Path, before: set[str]) -> None:
    """Drop the program's own modules (its helpers imported from ``program_dir``) so the next
    run, of this program or another with a same-named helper, imports them afresh."""
    root = str(program_dir.resolve())
    for name in set(sys.modules) - before:
        path = getattr(sys.modules.get(name), "__file__", None) or ""
        if path.startswith(root):
            del sys.modules[name]
