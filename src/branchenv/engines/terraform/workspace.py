"""One stack's terraform workspace: the work dir made ready (links, generated files, CLI
config, init) and the few commands the engine runs in it, each through :mod:`.cmd`.

Provider starts are what cost (each loads the aws provider's schema: seconds of CPU), so each
operation uses as few as its work allows: ``apply`` alone when no plan needs checking; with a
check, one ``plan -out -json``, ``show -json`` of that plan only when its planned actions do not
say enough for the check, and ``apply`` of the saved plan (never a second refresh); outputs and resources come from the state document (no terraform at all).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from branchenv.engines.terraform import cmd
from branchenv.engines.terraform.backend import BackendSpec
from branchenv.engines.terraform.cliconfig import write_cli_config
from branchenv.engines.terraform.hcl import read_module, tfvars_names
from branchenv.engines.terraform.options import TerraformOptions
from branchenv.engines.terraform.override import (
    LocalWiring,
    render_files,
    select_vars,
    write_files,
)
from branchenv.engines.terraform.workdir import prepare_work_dir

PLAN_FILE = "branchenv.tfplan"
LOCAL_ENDPOINT_ENV: tuple[str, ...] = (
    r"AWS_ENDPOINT_URL_",  # per service: outranks AWS_ENDPOINT_URL
    r"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS$",  # would turn AWS_ENDPOINT_URL off
    r"(TF_)?AWS_(DYNAMODB|IAM|S3|STS)_ENDPOINT$",  # the provider's older per-service ones
)
"""The caller's variables that could send a local-cloud run's requests elsewhere: on the
local cloud the aws provider finds its endpoint in ``AWS_ENDPOINT_URL`` and the work dir's
shared config file, with no ``endpoints`` block (:mod:`.override`), and these outrank both."""
_INIT_STAMP = ".branchenv_init"

OutputSink = Callable[[str], None]


def plugin_cache_dir() -> Path:
    """The provider cache every stack on this machine shares (``$XDG_CACHE_HOME``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "branchenv" / "terraform-plugins"


@dataclasses.dataclass(frozen=True)
class Workspace:
    """A prepared work dir of one stack, with the options every command runs with."""

    options: TerraformOptions
    backend: BackendSpec
    project: str
    stack: str

    @property
    def work_dir(self) -> Path:
        return self.options.work_dir


def work_dir_for(state_dir: Path, project: str, stack: str) -> Path:
    """``<state dir>/terraform/<project>/<stack>``."""
    return state_dir / "terraform" / project / stack


def prepare(
    *,
    binary: str,
    module_dir: Path,
    state_dir: Path,
    project: str,
    stack: str,
    backend: BackendSpec,
    region: str,
    tags: Mapping[str, str],
    offered_vars: Mapping[str, Any],
    local: LocalWiring | None,
    mirror: Path | None,
    env: Mapping[str, str] | None = None,
    lock_timeout_s: int = 30,
) -> Workspace:
    """Validate the module (variables it needs, HCL it holds) and build the stack's work dir.

    Everything that can be wrong with the input is found here, before terraform runs."""
    info = read_module(module_dir)
    variables = select_vars(info, offered_vars, given_by_module=tfvars_names(module_dir))
    work_dir = prepare_work_dir(module_dir, work_dir_for(state_dir, project, stack))
    write_files(
        work_dir,
        render_files(info, region=region, tags=tags, local=local, backend_kind=backend.kind),
    )
    cli_config = write_cli_config(
        state_dir / "terraform" / "cli.tfrc", mirror=mirror, plugin_cache=plugin_cache_dir()
    )
    run_env = {"TF_CLI_CONFIG_FILE": str(cli_config), "AWS_REGION": region}
    if local is not None:
        # The same endpoint as the work dir's shared config file (.override) and the same
        # credentials as the override: the engine's runs do not depend on that file alone.
        run_env.update(
            AWS_ACCESS_KEY_ID=local.access_key,
            AWS_SECRET_ACCESS_KEY=local.secret_key,
            AWS_ENDPOINT_URL=local.endpoint_url,
            AWS_EC2_METADATA_DISABLED="true",
        )
    run_env.update(env or {})
    options = TerraformOptions(
        work_dir=work_dir,
        binary=binary,
        vars=variables,
        env=run_env,
        env_cleared=LOCAL_ENDPOINT_ENV if local is not None else (),
        lock_timeout_s=lock_timeout_s,
    )
    return Workspace(options=options, backend=backend, project=project, stack=stack)


def _init_fingerprint(ws: Workspace) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps(ws.backend.init_args(ws.project, ws.stack)).encode())
    for path in sorted(ws.work_dir.glob("*.tf")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def init(ws: Workspace, *, on_output: OutputSink | None = None) -> bool:
    """``terraform init`` unless this work dir was initialised for the same files and backend
    (then nothing runs). Returns whether init ran."""
    stamp = ws.work_dir / _INIT_STAMP
    fingerprint = _init_fingerprint(ws)
    if (
        (ws.work_dir / ".terraform").is_dir()
        and stamp.is_file()
        and stamp.read_text() == fingerprint
    ):
        return False
    cmd.run(
        ws.options,
        ["init", "-reconfigure", *ws.backend.init_args(ws.project, ws.stack)],
        on_output=on_output,
    )
    stamp.write_text(fingerprint)
    return True


def plan_to_file(
    ws: Workspace,
    *,
    on_output: OutputSink | None = None,
    destroy: bool = False,
    refresh: bool = True,
) -> dict[str, Any]:
    """``plan -out`` then ``show -json`` of that plan: the plan document (terraform's JSON
    plan representation). ``refresh=False`` plans from the state as written."""
    save_plan(ws, on_output=on_output, destroy=destroy, refresh=refresh)
    return show_plan(ws)


def save_plan(
    ws: Workspace,
    *,
    on_output: OutputSink | None = None,
    destroy: bool = False,
    refresh: bool = True,
) -> tuple[dict[str, Any], ...]:
    """``plan -out -json``: the plan saved for :func:`apply_saved_plan`, and the messages of
    terraform's machine-readable UI (each resource's planned action, the change summary),
    shown to the sink as terraform's own lines. ``refresh=False`` plans from the state as
    written."""
    args = (
        ["plan", f"-out={PLAN_FILE}", "-json"]
        + (["-destroy"] if destroy else [])
        + ([] if refresh else ["-refresh=false"])
    )
    return cmd.run(ws.options, args, on_output=on_output, json_ui=True).messages


def show_plan(ws: Workspace) -> dict[str, Any]:
    """``show -json`` of the saved plan: the plan document (every resource's before and after
    values). A provider start of its own: asked for only when the planned actions do not say
    enough (:func:`~branchenv.engines.terraform.plan.steps_from_messages`)."""
    shown = cmd.run(ws.options, ["show", "-json", PLAN_FILE], stream_stdout=False)
    doc: dict[str, Any] = json.loads(shown.stdout)
    return doc


def discard_plan(ws: Workspace) -> None:
    """Remove a saved plan that will not be applied."""
    (ws.work_dir / PLAN_FILE).unlink(missing_ok=True)


def apply_saved_plan(ws: Workspace, *, on_output: OutputSink | None = None) -> cmd.CommandResult:
    """Apply the plan :func:`plan_to_file` saved (no second refresh, nothing re-planned)."""
    try:
        return cmd.run(ws.options, ["apply", "-auto-approve", PLAN_FILE], on_output=on_output)
    finally:
        discard_plan(ws)


def apply(
    ws: Workspace, *, on_output: OutputSink | None = None, refresh: bool = True
) -> cmd.CommandResult:
    """``apply -auto-approve``: plan and apply in one command."""
    args = ["apply", "-auto-approve"] + ([] if refresh else ["-refresh=false"])
    return cmd.run(ws.options, args, on_output=on_output)


def refresh_only(ws: Workspace, *, on_output: OutputSink | None = None) -> cmd.CommandResult:
    """``apply -refresh-only``: the state follows the target; no resource changes."""
    return cmd.run(ws.options, ["apply", "-refresh-only", "-auto-approve"], on_output=on_output)


def destroy(ws: Workspace, *, on_output: OutputSink | None = None, refresh: bool = True) -> None:
    """``destroy -auto-approve`` (destroy plans for itself: no separate plan run);
    ``refresh=False`` deletes by the state's ids without reading every resource first."""
    args = ["destroy", "-auto-approve"] + ([] if refresh else ["-refresh=false"])
    cmd.run(ws.options, args, on_output=on_output)


def plan_exit_code(ws: Workspace, *, on_output: OutputSink | None = None) -> int:
    """``plan -detailed-exitcode``: 0 no changes, 2 changes (drift or edits)."""
    result = cmd.run(
        ws.options, ["plan", "-detailed-exitcode"], on_output=on_output, ok_codes=(0, 2)
    )
    return result.returncode
