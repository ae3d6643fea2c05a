"""Stack settings files, owned by the engine: one directory per backend and project.

The CLI keeps a stack's config (and its passphrase salt) in a local ``Pulumi.<stack>.yaml``,
never in the backend; by default beside the user's ``Pulumi.yaml``, named by stack only. Shared
by every target and backend of a checkout, such a file carried a local stack's endpoints into an
``aws`` update and one backend's salt into another's ``stack init`` (issue 14). So the engine
keeps them here instead, keyed by backend and project::

    <state dir>/pulumi-settings/<backend key>/<project>/
        Pulumi.yaml              the project's name and runtime: `pulumi stack init` runs here,
                                 so the salt it saves lands here (stack init has no
                                 --config-file; pkg/cmd/pulumi/stack/secrets.go)
        Pulumi.<stack>.yaml      the stack's config file (`--config-file` of config commands and
                                 updates; pkg/cmd/pulumi/stack/io.go ConfigFile)
        <stack>.branchenv.json   which passphrase source the stack was made with

Every ``up`` rewrites the config file's ``config:`` from scratch (secrets-provider keys kept), so
it holds exactly the desired config.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from branchenv.engines.pulumi.backend import backend_key
from branchenv.errors import ConfigError

SECRETS_PROVIDER_KEYS = ("secretsprovider", "encryptedkey", "encryptionsalt")
"""The ProjectStack keys that belong to the stack's secrets manager
(sdk/go/common/workspace/project.go); everything else in the file is config."""


class StackSettings:
    """The stack settings files of one project on one backend."""

    def __init__(self, state_dir: Path, backend_url: str, project: str, runtime: Any) -> None:
        self.root = state_dir / "pulumi-settings" / backend_key(backend_url) / project
        self.project = project
        self.runtime = runtime

    def prepare(self) -> Path:
        """The directory, with its minimal ``Pulumi.yaml`` (name and runtime) written."""
        import yaml

        self.root.mkdir(parents=True, exist_ok=True)
        project_file = self.root / "Pulumi.yaml"
        wanted = yaml.safe_dump({"name": self.project, "runtime": self.runtime}, sort_keys=False)
        if not project_file.is_file() or project_file.read_text(encoding="utf-8") != wanted:
            _write_atomic(project_file, wanted)
        return self.root

    def config_file(self, stack: str) -> Path:
        return self.root / f"Pulumi.{stack}.yaml"

    def write_config(self, stack: str, config: Mapping[str, Any]) -> None:
        """Make ``config`` the stack file's whole ``config:`` (plaintext values: strings, or
        lists and maps for structured provider config), keeping its secrets-provider keys.

        The file is the CLI's documented, hand-editable stack settings format; writing it
        directly keeps every value's type exact (``config set --path`` would turn a tag value
        such as ``1234`` or ``true`` into a number or a boolean: adjustObjectValue in
        sdk/go/common/resource/config). Secret values are added afterwards through the CLI,
        which encrypts them with the stack's salt."""
        import yaml

        self.prepare()
        data = {k: v for k, v in self._load(stack).items() if k in SECRETS_PROVIDER_KEYS}
        if config:
            data["config"] = dict(config)
        _write_atomic(self.config_file(stack), yaml.safe_dump(data, sort_keys=True))

    def _load(self, stack: str) -> dict[str, Any]:
        import yaml

        path = self.config_file(stack)
        if not path.is_file():
            return {}
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(
                f"cannot read the stack settings file {path} ({exc}); delete it and run "
                "`branchenv up` again (the stack's config is rewritten on every up)"
            ) from exc
        return data if isinstance(data, dict) else {}

    def forget(self, stack: str) -> None:
        """Remove the stack's local files (after the stack left the backend)."""
        self.config_file(stack).unlink(missing_ok=True)
        self._record_path(stack).unlink(missing_ok=True)

    # -- the passphrase source -----------------------------------------------------------------

    def _record_path(self, stack: str) -> Path:
        return self.root / f"{stack}.branchenv.json"

    def passphrase_source(self, stack: str) -> str | None:
        """The passphrase source recorded for the stack, or None when none is."""
        try:
            data = json.loads(self._record_path(stack).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None
        value = data.get("passphrase_source") if isinstance(data, dict) else None
        return value if isinstance(value, str) else None

    def record_passphrase_source(self, stack: str, source: str) -> None:
        self.prepare()
        if self.passphrase_source(stack) != source:
            _write_atomic(
                self._record_path(stack), json.dumps({"passphrase_source": source}) + "\n"
            )


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
