"""Shared by the tests that run the real terraform CLI: finding it and the provider mirror.

Those tests skip, with the reason shown (``-ra``), where terraform or a provider source is
missing; on a machine with both (this image, CI) they run and must pass.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import pytest

from branchenv.metadata import StackMetadata

# Read at import, before the autouse fixture strips BRANCHENV_* from each test's environment.
_ENV_MIRROR = os.environ.get("BRANCHENV_TERRAFORM_PLUGIN_MIRROR") or None
_SEARCH_ROOTS = (
    Path("/opt"),
    Path("/usr/local/share"),
    Path("/usr/share"),
    Path.home() / ".terraform.d",
)
_HOST_DIR = "registry.terraform.io"

PROGRAMS = Path(__file__).resolve().parent / "programs" / "terraform"
DEMO_MODULE = Path(__file__).resolve().parent.parent / "infra" / "terraform" / "aws"


def find_mirror() -> Path | None:
    """The provider filesystem mirror: BRANCHENV_TERRAFORM_PLUGIN_MIRROR, else the first
    directory holding a ``registry.terraform.io/`` found a few levels under the usual roots."""
    if _ENV_MIRROR:
        return Path(_ENV_MIRROR)
    for root in _SEARCH_ROOTS:
        if not root.is_dir():
            continue
        for depth_glob in ("*", "*/*", "*/*/*"):
            for candidate in sorted(root.glob(f"{depth_glob}/{_HOST_DIR}")):
                if (candidate / "hashicorp" / "aws").is_dir():
                    return candidate.parent
    return None


@pytest.fixture(scope="session")
def terraform_bin() -> str:
    path = shutil.which("terraform")
    if path is None:
        pytest.skip("terraform CLI not on PATH: the real-terraform tests cannot run here")
    return path


@pytest.fixture(scope="session")
def terraform_mirror(terraform_bin: str) -> Path:
    mirror = find_mirror()
    if mirror is None:
        pytest.skip(
            "no terraform provider mirror found (a directory holding registry.terraform.io/); "
            "set BRANCHENV_TERRAFORM_PLUGIN_MIRROR to run the real-terraform tests offline"
        )
    return mirror


def tf_metadata(stack: str) -> StackMetadata:
    """Metadata of a terraform stack on the local target, two hours to live."""
    return StackMetadata.create(
        stack=stack,
        branch=f"feature/{stack}",
        owner="tf@example.com",
        commit="c0ffee0",
        ttl=dt.timedelta(hours=2),
        now=dt.datetime.now(dt.UTC),
        target="local",
        engine="terraform",
    )
