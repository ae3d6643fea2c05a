"""The per-stack work dir: where terraform runs, so the user's module is never modified.

``<state dir>/terraform/<project>/<stack>/`` holds a link to every entry of the module
directory (so ``path.module``-relative files resolve and edits to the module are seen at once),
a copy of the module's ``.terraform.lock.hcl`` (init may rewrite it), terraform's own
``.terraform/`` (providers, backend), and the files the engine writes (``branchenv_*.tf``,
the saved plan). Hidden entries of the module (``.terraform``, ``.git``, build output) and local
state files are never linked: they belong to whoever runs the module by hand.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from branchenv.errors import UsageError

GENERATED_PREFIX = "branchenv_"
"""Files the engine writes into a work dir start with this; the module must not use it."""

LOCK_FILE = ".terraform.lock.hcl"
_NEVER_LINKED = ("terraform.tfstate", "terraform.tfstate.backup", "terraform.tfstate.d")


def module_entries(module_dir: Path) -> list[Path]:
    """The module's entries a work dir links to (sorted)."""
    if not module_dir.is_dir() or (
        not any(module_dir.glob("*.tf")) and not any(module_dir.glob("*.tf.json"))
    ):
        raise UsageError(
            f"{module_dir} is not a Terraform module (no *.tf files); point `program` in "
            "branchenv.toml at the directory holding your root module's .tf files"
        )
    entries = []
    for entry in sorted(module_dir.iterdir()):
        name = entry.name
        if name.startswith(".") or name in _NEVER_LINKED:
            continue
        if name.startswith(GENERATED_PREFIX):
            raise UsageError(
                f"{entry} uses the {GENERATED_PREFIX}* prefix the terraform engine reserves for "
                "the files it generates in the stack's work dir; rename it"
            )
        entries.append(entry)
    return entries


def prepare_work_dir(module_dir: Path, work_dir: Path) -> Path:
    """Create or refresh ``work_dir`` from ``module_dir``: links added for new entries, removed
    for entries gone from the module; terraform's and the engine's files are kept."""
    module_dir = module_dir.resolve()
    entries = module_entries(module_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    wanted = {entry.name: entry for entry in entries}
    for existing in work_dir.iterdir():
        if existing.is_symlink() and existing.name not in wanted:
            existing.unlink()
    for name, entry in wanted.items():
        link = work_dir / name
        if link.is_symlink() and os.readlink(link) == str(entry):
            continue
        if link.is_symlink() or link.is_file():
            link.unlink(missing_ok=True)
        elif link.is_dir():
            shutil.rmtree(link)
        try:
            link.symlink_to(entry)
        except FileExistsError:
            # A concurrent run of the same stack made it between our look and our link (the
            # contract's two concurrent ups); the same link is fine, anything else is not.
            if not (link.is_symlink() and os.readlink(link) == str(entry)):
                raise
    lock = module_dir / LOCK_FILE
    if lock.is_file() and not (work_dir / LOCK_FILE).exists():
        shutil.copyfile(lock, work_dir / LOCK_FILE)
    return work_dir
