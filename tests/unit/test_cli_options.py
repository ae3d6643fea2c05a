"""The CLI's one option vocabulary (issue 16): walk every command of the typer app and fail on a
flag spelled two ways, a flag not in the vocabulary, a `<bool>` metavar or a command whose help
does not list its exit codes (3 included)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import typer.main

from branchenv.cli import build_app
from branchenv.cli.options import FLAGS, Flag, option

BUILTIN = {"--help", "--version"}


def _commands(command: Any, path: str = "branchenv") -> Iterator[tuple[str, Any]]:
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from _commands(sub, f"{path} {name}")


ROOT = typer.main.get_command(build_app())
COMMANDS = list(_commands(ROOT))


def _options(command: Any) -> list[Any]:
    # typer's own option class is not a click.Option subclass: ask the parameter what it is
    return [p for p in command.params if getattr(p, "param_type_name", None) == "option"]


def test_the_walk_sees_every_command_and_its_options() -> None:
    assert any(sorted(o.opts) == ["--branch", "-b"] for o in _options(ROOT.commands["up"]))  # type: ignore[attr-defined]
    paths = {p for p, _ in COMMANDS}
    for expected in (
        "branchenv up",
        "branchenv ls",
        "branchenv reap",
        "branchenv ci",
        "branchenv cost",
        "branchenv cost refresh-prices",
        "branchenv config show",
    ):
        assert expected in paths


@pytest.mark.parametrize("path,command", COMMANDS, ids=[p for p, _ in COMMANDS])
def test_every_flag_is_the_vocabularys(path: str, command: Any) -> None:
    for opt in _options(command):
        longs = [n for n in opt.opts if n.startswith("--")]
        shorts = [n for n in opt.opts if not n.startswith("--")]
        assert len(longs) == 1, f"{path}: {opt.opts} has no single long name"
        if longs[0] in BUILTIN:
            continue
        flag = FLAGS.get(longs[0])
        assert flag is not None, f"{path}: {longs[0]} is not in the vocabulary (cli/options.py)"
        assert shorts == ([flag.short] if flag.short else []), (
            f"{path}: {longs[0]} is spelled {opt.opts}, the vocabulary says {flag.names}"
        )
        negated = [f"--no-{flag.long[2:]}"] if flag.negatable else []
        assert list(opt.secondary_opts) == negated, f"{path}: {longs[0]} has a --no- form"


@pytest.mark.parametrize("path,command", COMMANDS, ids=[p for p, _ in COMMANDS])
def test_help_has_no_bool_metavar_and_lists_the_exit_codes(path: str, command: Any) -> None:
    ctx = command.context_class(command, info_name=path)  # typer's own (vendored) click
    text = " ".join(command.get_help(ctx).split())
    assert "<bool>" not in text and "BOOLEAN" not in text, f"{path} --help: {text}"
    assert "Exit codes:" in text and "3 refused" in text, f"{path} --help omits exit codes"


def test_engine_help_lists_auto_and_every_registered_engine() -> None:
    from branchenv.engines import engine_names

    text = FLAGS["--engine"].help
    assert "auto" in text
    for name in engine_names():
        assert name in text


def test_a_short_name_means_one_flag_everywhere() -> None:
    seen: dict[str, str] = {}
    for path, command in COMMANDS:
        for opt in _options(command):
            for short in (n for n in opt.opts if not n.startswith("--")):
                long = next(n for n in opt.opts if n.startswith("--"))
                assert seen.setdefault(short, long) == long, (
                    f"{path}: {short} is {long} here but {seen[short]} elsewhere"
                )


def test_the_walk_fails_on_a_flag_spelled_two_ways() -> None:
    """The check itself, on a command that spells --target without -t: it must fail."""
    app = typer.Typer()

    @app.command()
    def bad(target: str = typer.Option(None, "--target")) -> None:  # pragma: no cover
        del target

    @app.command()
    def good(target: str = option("--target")) -> None:  # pragma: no cover
        del target

    command = typer.main.get_command(app)
    with pytest.raises(AssertionError, match="spelled"):
        test_every_flag_is_the_vocabularys("x bad", command.commands["bad"])  # type: ignore[attr-defined]
    test_every_flag_is_the_vocabularys("x good", command.commands["good"])  # type: ignore[attr-defined]


def test_flags_are_defined_once() -> None:
    assert all(isinstance(f, Flag) and f.long.startswith("--") for f in FLAGS.values())
    shorts = [f.short for f in FLAGS.values() if f.short]
    assert len(shorts) == len(set(shorts))
