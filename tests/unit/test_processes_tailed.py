"""processes.Tailed: an engine child's output read from files as it grows, every line once, in
order, split multi-byte characters and a last unterminated line included; and the child keeps
running when nobody reads any more (a pipe would SIGPIPE a Go program there)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from branchenv import processes

CHILD = r"""
import sys, time
out = sys.stdout.buffer
out.write("first line\n".encode()); out.flush()
snow = "snow \u2603\n".encode()
out.write(snow[:6]); out.flush(); time.sleep(0.2)  # the snowman split between two reads
out.write(snow[6:]); out.flush()
sys.stderr.write("to stderr\n"); sys.stderr.flush()
for i in range(300):
    out.write(f"line {i}\n".encode())
out.write(b"no newline at the end"); out.flush()
"""


def test_every_line_once_in_order_from_both_streams() -> None:
    got: list[str] = []
    errs: list[str] = []
    child = processes.Tailed(
        [sys.executable, "-c", CHILD],
        cwd=None,
        env=dict(os.environ),
        on_stdout=got.append,
        on_stderr=errs.append,
    )
    assert child.proc.wait(timeout=60) == 0
    child.finish()
    assert got[:2] == ["first line\n", "snow \u2603\n"]
    assert got[2:-1] == [f"line {i}\n" for i in range(300)]
    assert got[-1] == "no newline at the end"
    assert errs == ["to stderr\n"]


def test_the_child_runs_on_when_its_reader_is_gone(tmp_path: Path) -> None:
    """Writes after the tails stopped reading (as after `ci` died) neither fail nor stop it."""
    marker = tmp_path / "done"
    script = (
        "import sys, time\n"
        "time.sleep(0.5)\n"
        "for i in range(20000):\n"
        "    sys.stdout.write('x' * 100 + '\\n')\n"
        "sys.stdout.flush()\n"
        f"open({str(marker)!r}, 'w').write('ok')\n"
    )
    child = processes.Tailed(
        [sys.executable, "-c", script],
        cwd=None,
        env=dict(os.environ),
        on_stdout=lambda _line: None,
        on_stderr=lambda _line: None,
    )
    child.finish()  # the reader stops before the child has written anything
    assert child.proc.wait(timeout=60) == 0  # with a pipe: BrokenPipeError, exit 1
    assert marker.read_text() == "ok"
