"""The docs run: every `branchenv …` line of a ```bash block in docs/ runs, in document order per
file, in a fresh copy of the demo project (a git checkout on its own local cloud), and exits 0
(or the `# exit: N` it is annotated with). Lines ending in `# needs: aws` need a real account
or the pulumi CLI and are skipped. And docs/cli.md is what scripts/gen_cli_reference.py makes.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import REPO_ROOT, subprocess_env
from tests.e2e.conftest import E2E_DEFAULTS, EXE, make_project

DOCS = REPO_ROOT / "docs"
FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w+-]*)")
NEEDS = re.compile(r"#\s*needs:\s*aws\s*$")
EXIT = re.compile(r"#\s*exit:\s*(\d+)\s*$")
SHELL_LANGS = {"sh", "shell", "console", "zsh", "shell-session"}
BRANCH = "feature/docs"


@dataclasses.dataclass(frozen=True)
class DocCommand:
    """One `branchenv …` line of a doc."""

    file: str
    line_no: int
    line: str
    expect_exit: int
    needs_aws: bool


def commands_in(text: str, name: str) -> list[DocCommand]:
    """The `branchenv …` lines of the ```bash blocks of a Markdown text, in order.

    Raises ValueError for a `branchenv` line in a shell block not marked `bash` (it would
    escape this test) and for an unclosed fence."""
    found: list[DocCommand] = []
    fence: str | None = None
    lang = ""
    for no, raw in enumerate(text.splitlines(), start=1):
        match = FENCE.match(raw)
        if fence is None:
            if match:
                fence, lang = match.group(2), match.group(3).lower()
            continue
        if match and match.group(2).startswith(fence) and not match.group(3):
            fence = None
            continue
        line = raw.strip()
        if not line.startswith("branchenv "):
            continue
        if lang in SHELL_LANGS:
            raise ValueError(f"{name}:{no}: mark this block ```bash so the docs test runs it")
        if lang != "bash":
            continue
        exit_match = EXIT.search(line)
        found.append(
            DocCommand(
                file=name,
                line_no=no,
                line=line,
                expect_exit=int(exit_match.group(1)) if exit_match else 0,
                needs_aws=bool(NEEDS.search(line)),
            )
        )
    if fence is not None:
        raise ValueError(f"{name}: a ``` fence is never closed")
    return found


def doc_files() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.md"))


def doc_commands(path: Path) -> list[DocCommand]:
    return commands_in(path.read_text(encoding="utf-8"), str(path.relative_to(REPO_ROOT)))


RUNNABLE = {
    str(p.relative_to(REPO_ROOT)): cmds
    for p in doc_files()
    if (cmds := [c for c in doc_commands(p) if not c.needs_aws])
}


# --- the parser ------------------------------------------------------------------------------


PARSE_CASES = [
    ("```bash\nbranchenv up\n```\n", [("branchenv up", 0, False)]),
    ("```bash\nbranchenv up --target aws   # needs: aws\n```", [("", 0, True)]),
    ("```bash\nbranchenv cost --max-total 0  # exit: 1\n```", [("", 1, False)]),
    ("text branchenv up\n```yaml\nbranchenv up\n```\n```text\nbranchenv x\n```", []),
    ("```bash\n  branchenv ls   \nexport X=1\n./dev demo\n```", [("branchenv ls", 0, False)]),
    ("````bash\n```\nbranchenv ls\n````\nbranchenv no\n", [("branchenv ls", 0, False)]),
    ("1. step\n\n   ```bash\n   branchenv ls\n   ```\n", [("branchenv ls", 0, False)]),
]


@pytest.mark.parametrize(("text", "expected"), PARSE_CASES)
def test_commands_are_found_with_their_annotations(
    text: str, expected: list[tuple[str, int, bool]]
) -> None:
    got = commands_in(text, "x.md")
    assert [(c.expect_exit, c.needs_aws) for c in got] == [(e, n) for _, e, n in expected]
    for cmd, (line, _, _) in zip(got, expected, strict=True):
        if line:
            assert cmd.line == line


@pytest.mark.parametrize("text", ["```sh\nbranchenv up\n```", "```bash\nbranchenv up\n"])
def test_untestable_docs_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        commands_in(text, "x.md")


def test_the_docs_show_commands_worth_running() -> None:
    everything = [c for p in doc_files() for c in doc_commands(p)]
    assert len([c for c in everything if not c.needs_aws]) >= 20
    shown = {c.line.split()[1] for c in everything if not c.needs_aws}
    assert {"up", "down", "ci", "test", "cloud", "reap", "cost", "ls"} <= shown
    # The pages the issue asks for are there.
    names = {p.name for p in doc_files()}
    assert {
        "index.md",
        "quickstart.md",
        "concepts.md",
        "ci.md",
        "cost.md",
        "local-cloud.md",
        "troubleshooting.md",
        "cli.md",
    } <= names


# --- running them ----------------------------------------------------------------------------


def _git(root: Path, *args: str) -> None:
    env = subprocess_env(
        GIT_AUTHOR_NAME="Docs Test",
        GIT_AUTHOR_EMAIL="docs@example.com",
        GIT_COMMITTER_NAME="Docs Test",
        GIT_COMMITTER_EMAIL="docs@example.com",
    )
    subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True)


@pytest.mark.slow
@pytest.mark.parametrize("doc", sorted(RUNNABLE))
def test_every_local_command_in_the_doc_runs(doc: str, tmp_path: Path) -> None:
    project = make_project(tmp_path)
    _git(project.root, "init", "-q", "-b", BRANCH)
    _git(project.root, "add", "-A")
    _git(project.root, "commit", "-q", "-m", "demo project")
    env = subprocess_env(
        PATH=f"{EXE.parent}{os.pathsep}{os.environ.get('PATH', '')}", **E2E_DEFAULTS
    )
    try:
        for cmd in RUNNABLE[doc]:
            started = time.monotonic()
            proc = subprocess.run(
                ["bash", "-c", cmd.line],
                cwd=project.root,
                env=env,
                capture_output=True,
                text=True,
                timeout=180,
            )
            print(f"{time.monotonic() - started:6.1f} s  {cmd.line}")
            assert proc.returncode == cmd.expect_exit, (
                f"{cmd.file}:{cmd.line_no}: `{cmd.line}` exited {proc.returncode}, "
                f"the doc expects {cmd.expect_exit}\nstdout:\n{proc.stdout[-2000:]}\n"
                f"stderr:\n{proc.stderr[-2000:]}"
            )
            assert "Traceback" not in proc.stderr, f"{cmd.file}:{cmd.line_no}: {proc.stderr}"
    finally:
        project.run("cloud", "stop")


# --- the generated CLI reference ---------------------------------------------------------------


def _generator() -> ModuleType:
    path = REPO_ROOT / "scripts" / "gen_cli_reference.py"
    spec = importlib.util.spec_from_file_location("gen_cli_reference", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_cli_reference_is_current() -> None:
    gen = _generator()
    current = (DOCS / "cli.md").read_text(encoding="utf-8")
    assert current == gen.render(), (
        "docs/cli.md is stale: regenerate it with `python scripts/gen_cli_reference.py`"
    )


def test_cli_reference_covers_every_command_and_option() -> None:
    import typer.main

    from branchenv.cli import build_app

    gen = _generator()
    text = gen.render()
    assert text == gen.render()  # deterministic
    entries = list(gen.walk(typer.main.get_command(build_app())))
    assert len(entries) > 10
    for entry in entries:
        assert f"## `{entry.path}`\n" in text
        for param in entry.command.get_params(entry.ctx):
            for opt in param.opts:
                if opt.startswith("-"):
                    assert opt in text, f"{entry.path}: option {opt} missing"


def test_the_check_mode_catches_a_stale_file(tmp_path: Path) -> None:
    gen = _generator()
    out = tmp_path / "cli.md"
    assert gen.main(["--out", str(out)]) == 0
    assert gen.main(["--out", str(out), "--check"]) == 0
    out.write_text(out.read_text(encoding="utf-8").replace("--json", "--jsn", 1))
    assert gen.main(["--out", str(out), "--check"]) == 1


LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("doc", [str(p.relative_to(REPO_ROOT)) for p in doc_files()])
def test_relative_links_resolve(doc: str) -> None:
    path = REPO_ROOT / doc
    for target in LINK.findall(path.read_text(encoding="utf-8")):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        file = target.split("#", 1)[0]
        assert (path.parent / file).exists(), f"{doc}: broken link {target}"
