"""How heavy an install of branchenv is: a fresh venv, core only and with `[all]`, size and time.

Usage: python benchmarks/install.py [--groups core,all,pulumi,k8s,local] [--cache] [--keep]

For each group it creates a fresh venv in a temp dir, runs `pip install <this checkout>[group]`
(a regular, non-editable install, as a user gets it), and prints the wall time of the install,
the venv's size on disk (du) and the base venv's (python -m venv alone), the number of
distributions installed, and the largest packages. pip uses its ordinary configuration (index,
PIP_FIND_LINKS); without --cache it runs with --no-cache-dir, so the time includes downloading
everything, as on a fresh machine. Then it checks what the group promises: that `branchenv
--help` runs, and (core) that no engine package came along. Figures only: nothing asserts.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("pulumi", "pulumi_aws", "pulumi_kubernetes", "kubernetes_validate", "moto")


def du_mb(path: Path) -> float:
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0]) / 1024


def largest(site: Path, top: int = 6) -> list[tuple[float, str]]:
    sizes = []
    for child in site.iterdir():
        if child.is_dir() and not child.name.endswith((".dist-info", "__pycache__")):
            sizes.append((du_mb(child), child.name))
    return sorted(sizes, reverse=True)[:top]


def install(group: str, root: Path, *, cache: bool) -> None:
    venv = root / f"venv-{group}"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    base_mb = du_mb(venv)
    python = venv / "bin" / "python"
    spec = str(REPO) if group == "core" else f"{REPO}[{group}]"
    cmd = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    if not cache:
        cmd.append("--no-cache-dir")
    started = time.perf_counter()
    proc = subprocess.run([*cmd, spec], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        print(f"{group:<6} pip install failed ({proc.returncode}): {proc.stderr.strip()[-800:]}")
        return
    size_mb = du_mb(venv)
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
    ).stdout.split()
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    print(
        f"{group:<6} install {seconds:6.1f} s   venv {size_mb:7.1f} MB "
        f"(installed {size_mb - base_mb:7.1f} MB over a bare venv of {base_mb:.1f} MB)   "
        f"{len(listed)} distributions"
    )
    print("       largest: " + ", ".join(f"{name} {mb:.0f} MB" for mb, name in largest(site)))
    help_rc = subprocess.run(
        [str(venv / "bin" / "branchenv"), "--help"], capture_output=True, cwd=root
    ).returncode
    probe = subprocess.run(
        [str(python), "-c",
         "import importlib.util as u; print(' '.join(m for m in "
         f"{HEAVY!r} if u.find_spec(m)))"],
        capture_output=True, text=True, cwd=root,
    ).stdout.strip()  # fmt: skip
    print(f"       branchenv --help exit {help_rc}; engine packages present: {probe or 'none'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", default="core,all", help="comma-separated (default core,all)")
    parser.add_argument("--cache", action="store_true", help="let pip use its download cache")
    parser.add_argument("--keep", action="store_true", help="keep the venvs (prints where)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="branchenv-bench-install-"))
    print(
        f"fresh venvs under {root}; pip cache {'on' if args.cache else 'off'}; "
        f"PIP_FIND_LINKS={os.environ.get('PIP_FIND_LINKS', '')!r}"
    )
    try:
        for group in args.groups.split(","):
            install(group.strip(), root, cache=args.cache)
    finally:
        if args.keep:
            print(f"kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
