"""Programs: which kind a directory holds and where its project is, from real files in tmp."""

from __future__ import annotations

from pathlib import Path

import pytest

from branchenv.config import ProgramSetting, Settings
from branchenv.errors import ConfigError, UsageError
from branchenv.programs import configured_programs, detect_program, select_program


def pulumi(folder: Path, name: str, main: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Pulumi.yaml").write_text(
        f"name: {name}\nruntime: python\n" + (f"main: {main}\n" if main else "")
    )
    return folder


def test_pulumi_yaml_main_is_honoured_from_the_project_dir(tmp_path: Path) -> None:
    pulumi(tmp_path, "shop", main="src/")
    (tmp_path / "src").mkdir()
    (tmp_path / "stacks").mkdir()
    (tmp_path / "stacks" / "Pulumi.local.yaml").write_text("config: {}\n")
    program = detect_program(tmp_path)
    assert (program.kind, program.project) == ("pulumi", "shop")
    assert program.path == tmp_path / "src" and program.project_dir == tmp_path
    assert program.templates == {"local": tmp_path / "stacks" / "Pulumi.local.yaml"}


def test_the_main_dir_itself_is_that_program(tmp_path: Path) -> None:
    pulumi(tmp_path, "demo", main="infra/aws/")
    (tmp_path / "infra" / "aws").mkdir(parents=True)
    program = detect_program(tmp_path / "infra" / "aws")
    assert program.path == tmp_path / "infra" / "aws" and program.project == "demo"


def test_a_terraform_module_under_a_pulumi_project_is_a_terraform_program(tmp_path: Path) -> None:
    pulumi(tmp_path, "demo", main="infra/aws/")
    module = tmp_path / "infra" / "terraform" / "aws"
    module.mkdir(parents=True)
    (module / "main.tf").write_text('resource "aws_sqs_queue" "q" {}\n')
    program = detect_program(module, project="orders")
    assert (program.kind, program.project, program.path) == ("terraform", "orders", module)
    assert detect_program(module).project == "aws"  # the dir's name when none is given


@pytest.mark.parametrize("what", ["missing", "empty"])
def test_no_program_is_a_usage_error_naming_the_setting(tmp_path: Path, what: str) -> None:
    folder = tmp_path / "prog"
    if what == "empty":
        folder.mkdir()
    with pytest.raises(UsageError, match="`program`"):
        detect_program(folder)


def test_configured_programs_and_selection(tmp_path: Path) -> None:
    pulumi(tmp_path / "web", "mono-web")
    pulumi(tmp_path / "jobs", "mono-jobs")
    settings = Settings(
        project_dir=tmp_path, program="web", programs=(ProgramSetting("jobs", "jobs"),)
    )
    assert [p.name for p in configured_programs(settings)] == ["default", "jobs"]
    assert select_program(settings).name == "default"
    assert select_program(settings, "jobs").project == "mono-jobs"
    with pytest.raises(UsageError, match="configured: default, jobs") as caught:
        select_program(settings, "nope")
    assert "[tool.branchenv.programs.nope]" in str(caught.value)
    # Only named programs, none at the top: no default, and more than one asks which.
    only_named = Settings(
        project_dir=tmp_path,
        programs=(ProgramSetting("web", "web"), ProgramSetting("jobs", "jobs")),
    )
    with pytest.raises(UsageError, match="--program NAME"):
        select_program(only_named)


def test_two_programs_with_one_project_name_are_refused(tmp_path: Path) -> None:
    pulumi(tmp_path / "a", "same")
    pulumi(tmp_path / "b", "same")
    settings = Settings(project_dir=tmp_path, program="a", programs=(ProgramSetting("b", "b"),))
    with pytest.raises(ConfigError, match="both have project name 'same'"):
        configured_programs(settings)
