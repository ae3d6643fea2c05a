"""With PYTHONDONTWRITEBYTECODE set, the suite's child (a real pytest subprocess started by
run_suite) writes its bytecode, pytest's rewritten test modules included, into the cache dir
and nothing next to the suite; a second run reads it back instead of compiling again."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from branchenv.harness.stackfile import StackInfo, TargetInfo, write_stack_file
from branchenv.harness.suite import ReportPaths, bytecode_cache_dir, run_suite
from tests.conftest import subprocess_env


def test_the_suite_child_caches_bytecode_outside_the_sources(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "helper_mod.py").write_text("VALUE = 41\n")
    (suite / "test_cached.py").write_text(
        "import sys\n"
        "sys.path.insert(0, __file__.rsplit('/', 1)[0])\n"
        "import helper_mod\n\n"
        "def test_value():\n"
        "    assert helper_mod.VALUE + 1 == 42\n"
    )
    # The machine's shared cache (already warm with pytest's own bytecode, which keeps this
    # test quick); only this test's suite files are looked for, and removed after.
    env = subprocess_env(PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTHONPYCACHEPREFIX", None)
    reports = tmp_path / "reports"
    reports.mkdir()
    paths = ReportPaths.under(reports)
    # A stack the suite never touches (its test needs none): the plugin only reads the file.
    write_stack_file(
        StackInfo(
            stack="bytecode-test",
            branch="bytecode/test",
            target=TargetInfo("local", "us-east-1", "http://127.0.0.1:9", None),
            outputs={},
            latency_p95_ms=500,
            ready_s=0.0,
        ),
        paths.stack_file,
    )
    lines: list[str] = []

    def run() -> int | None:
        return run_suite(
            suite, paths, cwd=tmp_path, env=env, extra_args=["-p", "no:cacheprovider"],
            on_output=lines.append,
        ).exit_code  # fmt: skip

    mirrored = bytecode_cache_dir(env) / str(suite).lstrip("/")
    try:
        _check(run, lines, suite, mirrored)
    finally:
        shutil.rmtree(mirrored, ignore_errors=True)


def _check(run: Callable[[], int | None], lines: list[str], suite: Path, mirrored: Path) -> None:
    assert run() == 0, "\n".join(lines)
    names = sorted(p.name for p in mirrored.iterdir())
    tag = sys.implementation.cache_tag
    assert f"helper_mod.{tag}.pyc" in names
    assert any(n.startswith(f"test_cached.{tag}-pytest") for n in names), names
    # Nothing next to the sources.
    assert not (suite / "__pycache__").exists()
    stamps = {p: p.stat().st_mtime_ns for p in mirrored.iterdir()}
    assert run() == 0, "\n".join(lines)
    # The second run read the cached files: none was written again.
    assert {p: p.stat().st_mtime_ns for p in mirrored.iterdir()} == stamps
