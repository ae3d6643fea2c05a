"""The fuzz tier (issue 15): random input to the CLI as a user gives it, bounded.

Branch names, TTLs, durations, every setting (in branchenv.toml, pyproject.toml and the
environment) with values of the wrong type, random bytes as config and state files, random
pidfile contents. The property, for every example: the command either accepts the input or
says one line and exits 2 (3 for a safety refusal; 1 where the input is fine and what it names
does not exist), never a traceback, and nothing is created before validation (no state dir, no
local cloud started, no signal sent to anything).

In-process (``branchenv.cli.main`` with the real argv, cwd and environment) so hundreds of
examples fit in well under two minutes; every command is given one input that is always bad
(a sentinel) next to the fuzzed one, so no example ever creates a stack. Examples are
derandomized (the same ones every run); ``BRANCHENV_FUZZ_EXAMPLES=N`` runs N random ones per
property instead. A failure the tier found is kept below as an explicit ``@example``.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from branchenv.config import SETTING_NAMES

_RANDOM = os.environ.get("BRANCHENV_FUZZ_EXAMPLES")
FUZZ = settings(
    max_examples=int(_RANDOM) if _RANDOM else 25,
    derandomize=not _RANDOM,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

PROGRAM = """\
import pulumi
import pulumi_aws as aws

aws.s3.Bucket("data")
"""
BAD_TTL = "--ttl=soon"  # the sentinel: no example's command ever acts


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


@contextlib.contextmanager
def project(*, config: bytes | None = None, pyproject: bytes | None = None) -> Iterator[Path]:
    """A fresh user project (Pulumi.yaml, a one-bucket program, a .git marker)."""
    root = Path(tempfile.mkdtemp(prefix="fuzz-"))
    try:
        (root / ".git").mkdir()
        (root / "Pulumi.yaml").write_text("name: fuzzed\nruntime: python\n")
        (root / "__main__.py").write_text(PROGRAM)
        if config is not None:
            (root / "branchenv.toml").write_bytes(config)
        if pyproject is not None:
            (root / "pyproject.toml").write_bytes(pyproject)
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run(root: Path, *argv: str, env: Mapping[str, str] | None = None) -> Result:
    """``branchenv ARGV`` in ``root`` with ``env`` added: what a user sees. Any exception other
    than the exit escapes (that is a traceback, the failure this tier looks for)."""
    from branchenv.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    code = 0
    try:
        os.chdir(root)
        os.environ.update(env or {})
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(list(argv))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    return Result(code, out.getvalue(), err.getvalue())


def assert_clean(result: Result, codes: tuple[int, ...], root: Path, *, state: bool) -> None:
    """The property: an allowed code; an error is said, on one line when it is branchenv's;
    nothing created (no state dir unless the example made one, never a local cloud)."""
    assert result.code in codes, (result.code, result.err[-2000:])
    assert "Traceback" not in result.err and "Traceback" not in result.out, result.err
    if result.code != 0:
        assert result.err.strip(), "an error exit with nothing said"
        if "branchenv: error:" in result.err:
            assert len(result.err.strip().splitlines()) == 1, result.err
    if not state:
        assert not (root / ".branchenv").exists(), "created the state dir before validating"
    assert not (root / ".branchenv" / "localcloud" / "server.json").exists(), (
        "started a local cloud"
    )


# --- strategies -------------------------------------------------------------------------------

text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\x00"),
    max_size=40,
)
branchy = st.one_of(
    text,
    st.from_regex(r"[a-zA-Z0-9._/@{}~^:?*\[\]\\ -]{0,80}", fullmatch=True),
    st.sampled_from(["main", "-x", "--", "..", "a..b", "a/", "/a", "a.lock", "@", "HEAD"]),
)
durations = st.one_of(
    text,
    st.from_regex(r"-?[0-9]{0,25}(\.[0-9]{0,5})?(s|m|h|d|w|y|ms|)", fullmatch=True),
    st.sampled_from(["0", "0s", "1e309d", "inf", "nan", "9" * 30 + "d", "1h30m", " 2h", "2h "]),
)
seconds = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    text,
    st.sampled_from(["inf", "-inf", "nan", "1e400", "0", "-1", "86401"]),
)
toml_values = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.booleans().map(lambda b: "true" if b else "false"),
    text.map(lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'),
    st.sampled_from(
        ["[]", '["a", 1]', "[1, 2]", "{}", "{ a = 1 }", "1979-05-27T07:32:00Z", "nan", "inf", '""']
    ),
)


# --- the properties ---------------------------------------------------------------------------


@FUZZ
@given(branch=branchy)
@example(branch="main")
def test_branch_names(branch: str) -> None:
    with project() as root:
        up = run(root, "up", "--branch", branch, BAD_TTL)
        assert_clean(up, (2, 3), root, state=False)
        outputs = run(root, "outputs", "--branch", branch)
        assert_clean(outputs, (1, 2, 3), root, state=False)


@FUZZ
@given(ttl=durations)
def test_ttls(ttl: str) -> None:
    with project() as root:
        up = run(root, "up", "--branch", "fuzz/ttl", f"--ttl={ttl}", "--profile", "nope")
        assert_clean(up, (2,), root, state=False)
        ci = run(root, "ci", "--branch", "fuzz/ttl", f"--ttl={ttl}", "--suite", "/no/such/suite")
        assert_clean(ci, (2,), root, state=False)


@FUZZ
@given(grace=durations, timeout=seconds)
def test_durations(grace: str, timeout: str) -> None:
    with project() as root:
        reap = run(root, "reap", f"--orphan-grace={grace}", "--target", "nowhere")
        assert_clean(reap, (2,), root, state=False)
        ci = run(
            root, "ci", "--branch", "fuzz/t", f"--ready-timeout={timeout}", "--suite", "/no/such"
        )
        assert_clean(ci, (2,), root, state=False)
        for key in ("default_ttl", "idle_after", "max_age"):
            shown = run(root, "config", "show", "--json", env={f"BRANCHENV_{key.upper()}": grace})
            assert_clean(shown, (0, 2), root, state=False)


@FUZZ
@given(
    key=st.sampled_from(SETTING_NAMES),
    value=toml_values,
    where=st.sampled_from(["file", "pyproject"]),
)
def test_every_setting_with_values_of_any_type(key: str, value: str, where: str) -> None:
    line = f"{key} = {value}\n".encode()
    files = {"config": line} if where == "file" else {"pyproject": b"[tool.branchenv]\n" + line}
    with project(**files) as root:
        shown = run(root, "config", "show", "--json")
        assert_clean(shown, (0, 2), root, state=False)
        if shown.code == 2:
            assert key in shown.err or "not valid TOML" in shown.err, shown.err
        up = run(root, "up", "--branch", "fuzz/settings", BAD_TTL)
        assert_clean(up, (2,), root, state=False)


@FUZZ
@given(key=st.sampled_from(SETTING_NAMES), value=text)
def test_every_setting_from_the_environment(key: str, value: str) -> None:
    with project() as root:
        shown = run(root, "config", "show", "--json", env={f"BRANCHENV_{key.upper()}": value})
        assert_clean(shown, (0, 2), root, state=False)


@FUZZ
@given(data=st.binary(max_size=300), which=st.sampled_from(["config", "pyproject"]))
@example(data=b"\xff\xfe", which="config")
@example(data=b'[tool.branchenv]\nengine = "\xc3\x28"', which="pyproject")
def test_random_bytes_as_config_files(data: bytes, which: str) -> None:
    with project(**{which: data}) as root:
        shown = run(root, "config", "show", "--json")
        assert_clean(shown, (0, 2), root, state=False)
        up = run(root, "up", "--branch", "fuzz/bytes", BAD_TTL)
        assert_clean(up, (2,), root, state=False)


@FUZZ
@given(data=st.binary(max_size=400))
@example(data=b"")
@example(data=b"[1, 2]")
@example(data=b'{"version": 99}')
@example(data=b'{"version": 2, "resources": [{"urn": 1}]}')
def test_random_bytes_as_a_stack_state_file(data: bytes) -> None:
    from branchenv.naming import names_for

    stack = names_for("fuzz/state").stack
    with project() as root:
        state = root / ".branchenv" / "inprocess" / "fuzzed"
        state.mkdir(parents=True)
        (state / f"{stack}.json").write_bytes(data)
        listed = run(root, "ls", "--json", "--engine", "inprocess")
        assert_clean(listed, (0,), root, state=True)
        assert stack in listed.out  # listed, never hidden
        outputs = run(root, "outputs", "--branch", "fuzz/state", "--engine", "inprocess")
        assert_clean(outputs, (0, 1, 2), root, state=True)
        reap = run(root, "reap", "--json", "--engine", "inprocess")  # a dry run
        assert_clean(reap, (0,), root, state=True)


@FUZZ
@given(pid=st.one_of(st.integers().map(str), text), info=st.binary(max_size=200))
@example(pid="-1", info=b"[1,2]")
@example(pid="0", info=b"{}")
@example(pid="1", info=b"{}")
@example(pid="99999999999999999999", info=b"null")
@example(pid=str(os.getpid()), info=b'{"pid": 1, "endpoint_url": "http://127.evil.example:1"}')
def test_random_pidfile_contents(pid: str, info: bytes) -> None:
    """Whatever the local cloud's pidfile and server.json hold, `cloud status` and `cloud stop`
    signal nothing (no server of ours runs here) and say what they found in one line."""
    from unittest import mock

    sent: list[tuple[str, int, int]] = []
    real_kill = os.kill

    def kill(target: int, signum: int) -> None:
        if signum == 0 and target > 1:
            real_kill(target, 0)  # a liveness probe of one real process: harmless
            return
        sent.append(("kill", target, signum))
        raise ProcessLookupError(target)

    def killpg(target: int, signum: int) -> None:
        sent.append(("killpg", target, signum))
        raise ProcessLookupError(target)

    with project() as root:
        cloud = root / ".branchenv" / "localcloud"
        cloud.mkdir(parents=True)
        (cloud / "server.pid").write_text(pid)
        (cloud / "server.json").write_bytes(info)
        with mock.patch.object(os, "kill", kill), mock.patch.object(os, "killpg", killpg):
            status = run(root, "cloud", "status")
            stop = run(root, "cloud", "stop")
        assert sent == [], sent
        for result in (status, stop):
            assert_clean(result, (0, 1, 2), root, state=True)
