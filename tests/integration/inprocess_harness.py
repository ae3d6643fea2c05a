"""A small program of a test's own, run by the inprocess engine against the session's local
cloud: one place that knows how the engine is called, so the tests read as scenarios."""

from __future__ import annotations

import contextlib
import datetime as dt
import textwrap
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from branchenv.engines.base import DestroyResult, PreviewResult, Program, UpResult
from branchenv.engines.inprocess.engine import InProcessEngine
from branchenv.metadata import StackMetadata
from branchenv.targets import Target
from tests.conftest import inputs_for, program_at

HEADER = """
import pulumi
import pulumi_aws as aws

cfg = pulumi.Config("test")
"""


def metadata(stack: str) -> StackMetadata:
    return StackMetadata.create(
        stack=stack,
        branch=f"test/{stack}",
        owner="tests",
        commit="0" * 40,
        ttl=dt.timedelta(hours=1),
        now=dt.datetime.now(dt.UTC),
        target="local",
        engine="inprocess",
    )


@dataclass
class Stack:
    """One stack of one program (``__main__.py`` rewritten at will) on the local cloud."""

    root: Path
    target: Target
    stack: str = field(default_factory=lambda: f"int-{uuid.uuid4().hex[:8]}")
    lines: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.program = self.root / f"prog-{self.stack}"
        self.program.mkdir(parents=True)
        (self.program / "Pulumi.yaml").write_text("name: semantics\nruntime: python\n")
        self.engine = InProcessEngine(state_dir=self.root / "state")
        self.md = metadata(self.stack)

    def write(self, body: str) -> None:
        (self.program / "__main__.py").write_text(HEADER + textwrap.dedent(body))

    @property
    def prog(self) -> Program:
        return program_at(self.program)

    def inputs(self, config: dict[str, str]) -> Any:
        return inputs_for(self.md, {f"test:{k}": v for k, v in config.items()}, target=self.target)

    def say(self, line: str) -> None:
        self.lines.append(line)

    def up(
        self, plan_check: Callable[[Sequence[Any]], None] | None = None, **config: str
    ) -> UpResult:
        self.lines.clear()
        return self.engine.up(
            stack=self.stack,
            program=self.prog,
            target=self.target,
            metadata=self.md,
            inputs=self.inputs(config),
            on_output=self.say,
            plan_check=plan_check,
        )

    def preview(self, **config: str) -> PreviewResult:
        return self.engine.preview(
            stack=self.stack,
            program=self.prog,
            target=self.target,
            metadata=self.md,
            inputs=self.inputs(config),
        )

    def destroy(self) -> DestroyResult:
        self.lines.clear()
        return self.engine.destroy(
            stack=self.stack, program=self.prog, target=self.target, on_output=self.say
        )

    def state_path(self) -> Path:
        return self.root / "state" / "inprocess" / "semantics" / f"{self.stack}.json"

    def cleanup(self) -> None:
        from branchenv.errors import StackNotFound

        with contextlib.suppress(StackNotFound):
            self.destroy()
