"""A real, fresh venv holding only some of branchenv's dependency groups (core, core + [local],
...), built in a second: the distributions of each group's dependency closure, as installed in
this venv, are linked into a site dir of the new venv (their files, per each one's RECORD), so
every other package, pulumi and moto included, is genuinely absent from it. The source under
test is this checkout's src/ (run as ``python -m branchenv``).

Building it with pip would need the network or a wheel cache this image does not have (only
/opt/wheels, which holds none of these); the linked distributions are the very files pip put
here, so an import that works in the new venv works on a core-only pip install, and one that
fails there fails on it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

REPO_ROOT = Path(__file__).resolve().parent.parent


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def group_requirements(extras: tuple[str, ...]) -> list[Requirement]:
    """The core requirements plus those of ``extras`` from pyproject.toml (self-references such
    as ``branchenv[pulumi,k8s]`` in ``all`` expanded)."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    optional: dict[str, list[str]] = project.get("optional-dependencies", {})
    reqs = [Requirement(r) for r in project["dependencies"]]
    pending, done = list(extras), set()
    while pending:
        extra = pending.pop()
        if extra in done:
            continue
        done.add(extra)
        for raw in optional[extra]:
            req = Requirement(raw)
            if _norm(req.name) == "branchenv":
                pending.extend(req.extras)
            else:
                reqs.append(req)
    return reqs


def closure(reqs: list[Requirement]) -> set[str]:
    """The installed distributions ``reqs`` need, transitively (markers evaluated here)."""
    seen: dict[str, set[str]] = {}

    def visit(name: str, extras: set[str]) -> None:
        key = _norm(name)
        known = seen.get(key)
        if known is not None and extras <= known:
            return
        seen[key] = (known or set()) | extras
        dist = metadata.distribution(name)
        for raw in dist.requires or []:
            req = Requirement(raw)
            if req.marker is None:
                visit(req.name, set(req.extras))
                continue
            wanted = [e for e in seen[key] if req.marker.evaluate({"extra": e})]
            if wanted or ("extra" not in str(req.marker) and req.marker.evaluate({"extra": ""})):
                visit(req.name, set(req.extras))

    for req in reqs:
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            visit(req.name, set(req.extras))
    return set(seen)


def build_venv(dest: Path, extras: tuple[str, ...] = ()) -> Path:
    """A fresh venv at ``dest`` with the core (and ``extras``) only; returns its python."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(dest)], check=True, timeout=120
    )
    python = dest / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    linked = dest / "linked-site"
    linked.mkdir()
    for name in closure(group_requirements(extras)):
        dist = metadata.distribution(name)
        base = Path(str(dist.locate_file("")))
        tops = {f.parts[0] for f in dist.files or [] if not f.parts[0].startswith("..")}
        for top in tops:
            src, dst = base / top, linked / top
            # __pycache__ is shared by several single-module distributions: never link it.
            if top != "__pycache__" and src.exists() and not dst.exists():
                os.symlink(src, dst)
    (site / "branchenv_core_only.pth").write_text(f"{linked}\n{REPO_ROOT / 'src'}\n")
    return python
