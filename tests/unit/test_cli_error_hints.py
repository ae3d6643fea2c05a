"""The hint an error gets when it was raised without one: a fix that works from where the
user stands (a bad flag value points at the command's --help, a bad setting at config show)."""

from __future__ import annotations

from pathlib import Path

import pytest

from branchenv.cli.output import default_hint
from branchenv.config import load_settings
from branchenv.errors import ConfigError


def _config_error(**kwargs: object) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_settings(**kwargs)  # type: ignore[arg-type]
    return caught.value


def test_a_bad_flag_value_points_at_the_commands_help(tmp_path: Path) -> None:
    exc = _config_error(
        cwd=tmp_path, env={}, overrides={"engine": "bogus"}, flag_names={"engine": "--engine"}
    )
    assert str(exc).startswith("flag --engine")
    assert default_hint(exc, "pool drain") == (
        "`branchenv pool drain --help` lists the options and their values"
    )


def test_a_bad_setting_points_at_config_show(tmp_path: Path) -> None:
    exc = _config_error(cwd=tmp_path, env={"BRANCHENV_ENGINE": "bogus"})
    hint = default_hint(exc, "pool drain")
    assert hint is not None and "branchenv config show" in hint
