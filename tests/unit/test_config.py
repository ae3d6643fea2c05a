"""Settings: precedence of sources, sources reported, discovery and one-line errors."""

from __future__ import annotations

import dataclasses
import tempfile
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from branchenv.config import (
    SETTING_NAMES,
    Settings,
    describe,
    find_project_dir,
    load_settings,
)
from branchenv.errors import EXIT_USAGE, ConfigError

LAYERS = ("pyproject", "file", "env", "flag")
LAYER_SOURCE = {
    "pyproject": "pyproject.toml [tool.branchenv]",
    "file": "branchenv.toml",
    "env": "env BRANCHENV_REGION",
    "flag": "flag --region",
}
LAYER_REGION = {
    "pyproject": "eu-west-1",
    "file": "eu-central-1",
    "env": "ap-southeast-2",
    "flag": "us-gov-west-1",
}


def _project(root: Path, *, pyproject: str | None = None, config: str | None = None) -> Path:
    """A project directory marked by .git, with the given file contents."""
    (root / ".git").mkdir(exist_ok=True)
    if pyproject is not None:
        (root / "pyproject.toml").write_text(pyproject)
    if config is not None:
        (root / "branchenv.toml").write_text(config)
    return root


def _load_layers(root: Path, layers: frozenset[str]) -> Settings:
    pyproject = '[tool.branchenv]\nregion = "eu-west-1"\n' if "pyproject" in layers else None
    config = 'region = "eu-central-1"\n' if "file" in layers else None
    _project(root, pyproject=pyproject, config=config)
    env = {"BRANCHENV_REGION": "ap-southeast-2"} if "env" in layers else {}
    overrides = {"region": "us-gov-west-1"} if "flag" in layers else {}
    return load_settings(cwd=root, env=env, overrides=overrides)


# --- defaults and precedence ----------------------------------------------------------------


def test_defaults_when_no_source_sets_anything(tmp_path: Path) -> None:
    s = load_settings(cwd=_project(tmp_path), env={})
    assert s.project_dir == tmp_path.resolve()
    assert s.values() == {
        "program": None,
        "programs": (),
        "project": None,
        "default_ttl": "24h",
        "max_ttl": "30d",
        "tag_prefix": "branchenv:",
        "protected_patterns": ("prod*", "production*", "staging*", "main", "master"),
        "backend_url": None,
        "default_target": "local",
        "engine": None,
        "region": "us-east-1",
        "allowed_account_ids": (),
        "state_dir": ".branchenv",
        "idle_after": None,
        "max_age": None,
        "max_reap": 25,
        "reap_concurrency": 4,
        "max_hourly": None,
        "max_total": None,
        "latency_p95_ms": 500,
        "terraform_binary": "terraform",
        "terraform_plugin_mirror": None,
        "terraform_backend": "s3",
        "terraform_state_bucket": None,
        "terraform_state_prefix": "branchenv",
        "terraform_lock_table": None,
        "suite": None,
        "pool_size": {},
        "pool": False,
        "pool_fallback": "fail",
        "pool_ttl": "7d",
        "pool_refill": "background",
    }
    assert s.sources == dict.fromkeys(SETTING_NAMES, "default")


@pytest.mark.parametrize(
    ("layers", "winner"),
    [
        ((), None),
        (("pyproject",), "pyproject"),
        (("file",), "file"),
        (("pyproject", "file"), "file"),
        (("pyproject", "env"), "env"),
        (("file", "env"), "env"),
        (("pyproject", "file", "env"), "env"),
        (("env", "flag"), "flag"),
        (("pyproject", "flag"), "flag"),
        (("pyproject", "file", "env", "flag"), "flag"),
    ],
)
def test_precedence_defaults_pyproject_file_env_flag(
    tmp_path: Path, layers: tuple[str, ...], winner: str | None
) -> None:
    s = _load_layers(tmp_path, frozenset(layers))
    if winner is None:
        assert (s.region, s.sources["region"]) == ("us-east-1", "default")
    else:
        assert (s.region, s.sources["region"]) == (LAYER_REGION[winner], LAYER_SOURCE[winner])


@settings(max_examples=40, deadline=None)
@given(st.frozensets(st.sampled_from(LAYERS)))
def test_highest_layer_that_sets_a_key_wins(layers: frozenset[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        s = _load_layers(Path(tmp), layers)
    present = [layer for layer in LAYERS if layer in layers]
    expected = (
        (LAYER_REGION[present[-1]], LAYER_SOURCE[present[-1]])
        if present
        else ("us-east-1", "default")
    )
    assert (s.region, s.sources["region"]) == expected


def test_each_key_reports_its_own_source(tmp_path: Path) -> None:
    _project(
        tmp_path,
        pyproject='[tool.branchenv]\nprogram = "infra/k8s"\nmax_reap = 3\n',
        config='max_reap = 7\ndefault_target = "aws"\n',
    )
    s = load_settings(
        cwd=tmp_path,
        env={"BRANCHENV_DEFAULT_TARGET": "local", "BRANCHENV_LATENCY_P95_MS": "250"},
        overrides={"default_target": "aws", "engine": None},
        flag_names={"default_target": "--target"},
    )
    assert s.program == "infra/k8s"
    assert s.max_reap == 7
    assert s.default_target == "aws"
    assert s.latency_p95_ms == 250
    assert s.engine is None
    assert {k: v for k, v in s.sources.items() if v != "default"} == {
        "program": "pyproject.toml [tool.branchenv]",
        "max_reap": "branchenv.toml",
        "default_target": "flag --target",
        "latency_p95_ms": "env BRANCHENV_LATENCY_P95_MS",
    }


@pytest.mark.parametrize(
    ("env", "key", "expected"),
    [
        (
            {"BRANCHENV_PROTECTED_PATTERNS": "prod*, qa ,,x"},
            "protected_patterns",
            ("prod*", "qa", "x"),
        ),
        (
            {"BRANCHENV_ALLOWED_ACCOUNT_IDS": "012345678901,111122223333"},
            "allowed_account_ids",
            ("012345678901", "111122223333"),
        ),
        ({"BRANCHENV_MAX_REAP": " 0 "}, "max_reap", 0),
        ({"BRANCHENV_REAP_CONCURRENCY": "8"}, "reap_concurrency", 8),
        ({"BRANCHENV_MAX_HOURLY": "2.50"}, "max_hourly", Decimal("2.50")),
        ({"BRANCHENV_MAX_TOTAL": ""}, "max_total", None),
        ({"BRANCHENV_BACKEND_URL": "s3://bucket/state"}, "backend_url", "s3://bucket/state"),
        ({"BRANCHENV_BACKEND_URL": ""}, "backend_url", None),
        ({"BRANCHENV_ENGINE": "auto"}, "engine", None),
        ({"BRANCHENV_ENGINE": "InProcess"}, "engine", "inprocess"),
        ({"BRANCHENV_DEFAULT_TARGET": "AWS"}, "default_target", "aws"),
        ({"BRANCHENV_TAG_PREFIX": "acme/env:"}, "tag_prefix", "acme/env:"),
        ({"BRANCHENV_REGION": "us-isob-east-1"}, "region", "us-isob-east-1"),
        ({"BRANCHENV_REGION": "cn-north-1"}, "region", "cn-north-1"),
    ],
)
def test_env_values_are_parsed_to_their_types(
    tmp_path: Path, env: dict[str, str], key: str, expected: object
) -> None:
    s = load_settings(cwd=_project(tmp_path), env=env)
    assert getattr(s, key) == expected
    assert s.sources[key] == f"env BRANCHENV_{key.upper()}"


def test_unknown_branchenv_env_vars_are_not_settings(tmp_path: Path) -> None:
    s = load_settings(cwd=_project(tmp_path), env={"BRANCHENV_SOMETHING_ELSE": "x"})
    assert set(s.sources.values()) == {"default"}


def test_toml_values_of_every_kind(tmp_path: Path) -> None:
    _project(
        tmp_path,
        config=(
            'protected_patterns = ["release-*"]\n'
            'allowed_account_ids = ["000000000000"]\n'
            "max_hourly = 0.75\n"
            "max_total = 12\n"
            'engine = "pulumi"\n'
            'backend_url = "file://~/.pulumi"\n'
        ),
    )
    s = load_settings(cwd=tmp_path, env={})
    assert s.protected_patterns == ("release-*",)
    assert s.allowed_account_ids == ("000000000000",)
    assert s.max_hourly == Decimal("0.75")
    assert s.max_total == Decimal("12")
    assert s.engine == "pulumi"
    assert s.backend_url == "file://~/.pulumi"


def test_paths_are_absolute_under_the_project(tmp_path: Path) -> None:
    _project(tmp_path, config='state_dir = "var/be"\nprogram = "infra/k8s"\n')
    s = load_settings(cwd=tmp_path, env={})
    root = tmp_path.resolve()
    assert s.state_path == root / "var" / "be"
    assert s.program_path == root / "infra" / "k8s"
    assert s.state_path.is_absolute()
    assert s.effective_backend_url == (root / "var" / "be" / "pulumi").as_uri()
    with_url = dataclasses.replace(s, backend_url="s3://b")
    assert with_url.effective_backend_url == "s3://b"


def test_describe_lists_every_setting_and_redacts_url_secrets(tmp_path: Path) -> None:
    _project(tmp_path, config='backend_url = "https://me:hunter2@pulumi.example.com"\n')
    entries = describe(load_settings(cwd=tmp_path, env={}))
    assert [e.key for e in entries] == list(SETTING_NAMES)
    url = next(e for e in entries if e.key == "backend_url")
    assert url.value == "https://***@pulumi.example.com"
    assert url.source == "branchenv.toml"
    assert "hunter2" not in repr(entries)


# --- project discovery ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("markers", "expected"),
    [
        ({"": "branchenv.toml"}, ""),
        ({"": "Pulumi.yaml"}, ""),
        ({"": ".git"}, ""),
        ({"": "pyproject-with-table"}, ""),
        # a pyproject.toml without [tool.branchenv] is not a marker: keep walking up
        ({"": ".git", "a": "pyproject-plain"}, ""),
        # the nearest marker wins
        ({"": ".git", "a": "branchenv.toml"}, "a"),
        ({"": "branchenv.toml", "a/b": "Pulumi.yaml"}, "a/b"),
    ],
)
def test_project_dir_is_the_nearest_marked_ancestor(
    tmp_path: Path, markers: dict[str, str], expected: str
) -> None:
    for rel, marker in markers.items():
        d = tmp_path / rel
        d.mkdir(parents=True, exist_ok=True)
        if marker == ".git":
            (d / ".git").mkdir()
        elif marker == "pyproject-with-table":
            (d / "pyproject.toml").write_text("[tool.branchenv]\n")
        elif marker == "pyproject-plain":
            (d / "pyproject.toml").write_text('[project]\nname = "x"\n')
        else:
            (d / marker).write_text("")
    cwd = tmp_path / "a" / "b" / "c"
    cwd.mkdir(parents=True)
    assert find_project_dir(cwd) == (tmp_path / expected).resolve()


def test_project_dir_falls_back_to_cwd(tmp_path: Path) -> None:
    root = tmp_path.resolve()
    marks = ("branchenv.toml", "Pulumi.yaml", ".git")
    if any((p / m).exists() for p in root.parents for m in marks):
        pytest.skip("an ancestor of the tmp dir is itself marked as a project")
    cwd = root / "x"
    cwd.mkdir()
    assert find_project_dir(cwd) == cwd


def test_settings_come_from_the_discovered_dir(tmp_path: Path) -> None:
    _project(tmp_path, config='region = "eu-north-1"\n')
    sub = tmp_path / "src" / "pkg"
    sub.mkdir(parents=True)
    s = load_settings(cwd=sub, env={})
    assert (s.project_dir, s.region) == (tmp_path.resolve(), "eu-north-1")


# --- errors -----------------------------------------------------------------------------------


def _config_error(tmp_path: Path, **kwargs: object) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_settings(cwd=tmp_path, **kwargs)  # type: ignore[arg-type]
    err = info.value
    assert err.exit_code == EXIT_USAGE == 2
    assert "\n" not in str(err)
    return err


@pytest.mark.parametrize(
    ("line", "key", "why"),
    [
        ('region = "mars"', "region", "not an AWS region"),
        ('region = "US-EAST-1"', "region", "not an AWS region"),
        ("region = 1", "region", "expected a string"),
        ('default_target = "cloud"', "default_target", "not one of: local, aws"),
        ('engine = "terragrunt"', "engine", "not one of: auto, pulumi, inprocess, terraform"),
        ('terraform_binary = "terragrunt"', "terraform_binary", "not one of: terraform, tofu"),
        ('terraform_backend = "gcs"', "terraform_backend", "not one of: s3, local"),
        ('terraform_state_bucket = "Bad_Bucket"', "terraform_state_bucket", "S3 bucket name"),
        ('allowed_account_ids = ["1234"]', "allowed_account_ids", "12-digit"),
        ("allowed_account_ids = [123456789012]", "allowed_account_ids", "quoted strings"),
        ('allowed_account_ids = "123456789012"', "allowed_account_ids", "list of strings"),
        ('protected_patterns = "prod*"', "protected_patterns", "list of strings"),
        ('protected_patterns = ["prod*", ""]', "protected_patterns", "non-empty string"),
        ('tag_prefix = "branchenv"', "tag_prefix", "ending with ':'"),
        ('tag_prefix = "aws:x:"', "tag_prefix", "reserved"),
        ('tag_prefix = "bad#chars:"', "tag_prefix", "valid AWS tag key"),
        ("max_reap = -1", "max_reap", ">= 0"),
        ("reap_concurrency = 0", "reap_concurrency", ">= 1"),
        ("reap_concurrency = true", "reap_concurrency", "whole number"),
        ("latency_p95_ms = 1.5", "latency_p95_ms", "whole number"),
        ('max_hourly = "cheap"', "max_hourly", "amount in USD"),
        ("max_total = -3", "max_total", ">= 0"),
        ('max_total = "NaN"', "max_total", "finite"),
        ('backend_url = "bucket/state"', "backend_url", "URL"),
        ('default_ttl = ""', "default_ttl", "empty"),
    ],
)
def test_bad_file_value_names_file_key_and_reason(
    tmp_path: Path, line: str, key: str, why: str
) -> None:
    _project(tmp_path, config=line + "\n")
    msg = str(_config_error(tmp_path, env={}))
    assert msg.startswith(f"{(tmp_path / 'branchenv.toml').resolve()}: bad value for '{key}'")
    assert why in msg
    assert "branchenv.toml" in msg


@pytest.mark.parametrize("key", ["default_ttl", "idle_after", "max_age"])
@pytest.mark.parametrize("text", ["soon", "-5h", "24x"])
def test_bad_ttl_is_a_config_error(tmp_path: Path, key: str, text: str) -> None:
    _project(tmp_path)
    var = f"BRANCHENV_{key.upper()}"
    msg = str(_config_error(tmp_path, env={var: text}))
    assert msg.startswith(f"env {var}: bad value for '{key}'")
    assert f"unset {var}" in msg


@pytest.mark.parametrize("key", ["default_ttl", "idle_after", "max_age"])
@pytest.mark.parametrize("text", ["90m", "24h", "7d"])
def test_good_ttls_are_kept_as_written(tmp_path: Path, key: str, text: str) -> None:
    s = load_settings(cwd=_project(tmp_path), env={f"BRANCHENV_{key.upper()}": text})
    assert getattr(s, key) == text


@pytest.mark.parametrize(
    ("env", "var"),
    [
        ({"BRANCHENV_REGION": "moon-1"}, "BRANCHENV_REGION"),
        ({"BRANCHENV_MAX_REAP": "lots"}, "BRANCHENV_MAX_REAP"),
        ({"BRANCHENV_ALLOWED_ACCOUNT_IDS": "123456789012,42"}, "BRANCHENV_ALLOWED_ACCOUNT_IDS"),
        ({"BRANCHENV_DEFAULT_TARGET": "gcp"}, "BRANCHENV_DEFAULT_TARGET"),
    ],
)
def test_bad_env_value_names_the_variable(tmp_path: Path, env: dict[str, str], var: str) -> None:
    _project(tmp_path)
    msg = str(_config_error(tmp_path, env=env))
    assert msg.startswith(f"env {var}: bad value for ")
    assert f"fix or unset {var}" in msg


@pytest.mark.parametrize(
    ("overrides", "flag_names", "flag"),
    [
        ({"region": "nowhere"}, None, "--region"),
        ({"default_target": "gcp"}, {"default_target": "--target"}, "--target"),
        ({"reap_concurrency": 0}, None, "--reap-concurrency"),
    ],
)
def test_bad_override_names_the_flag(
    tmp_path: Path, overrides: dict[str, object], flag_names: dict[str, str] | None, flag: str
) -> None:
    _project(tmp_path)
    msg = str(_config_error(tmp_path, env={}, overrides=overrides, flag_names=flag_names))
    assert msg.startswith(f"flag {flag}: bad value for ")
    assert f"fix the value of {flag}" in msg


def test_override_for_an_unknown_setting_is_a_bug(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown setting 'colour'"):
        load_settings(cwd=_project(tmp_path), env={}, overrides={"colour": "blue"})


@pytest.mark.parametrize(
    ("pyproject", "config", "where", "typo", "suggestion"),
    [
        (None, 'regoin = "us-east-1"\n', "branchenv.toml", "regoin", "did you mean 'region'?"),
        (
            None,
            'default-ttl = "1h"\n',
            "branchenv.toml",
            "default-ttl",
            "did you mean 'default_ttl'?",
        ),
        (
            '[tool.branchenv]\nprotected_pattern = ["x"]\n',
            None,
            "pyproject.toml [tool.branchenv]",
            "protected_pattern",
            "did you mean 'protected_patterns'?",
        ),
        (
            None,
            "zzz = 1\n",
            "branchenv.toml",
            "zzz",
            "valid keys: program, programs, project, default_ttl",
        ),
    ],
)
def test_unknown_key_suggests_the_closest_valid_key(
    tmp_path: Path,
    pyproject: str | None,
    config: str | None,
    where: str,
    typo: str,
    suggestion: str,
) -> None:
    _project(tmp_path, pyproject=pyproject, config=config)
    msg = str(_config_error(tmp_path, env={}))
    assert msg.startswith(f"{tmp_path.resolve()}/{where}: unknown key '{typo}'")
    assert suggestion in msg


@pytest.mark.parametrize("name", ["branchenv.toml", "pyproject.toml"])
def test_malformed_toml_names_the_file(tmp_path: Path, name: str) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / name).write_text('[tool.branchenv]\nregion = "us-east-1\n')
    msg = str(_config_error(tmp_path, env={}))
    assert msg.startswith(f"{(tmp_path / name).resolve()}: not valid TOML (")
    assert "line 2" in msg
    assert "fix the syntax" in msg


def test_tool_branchenv_must_be_a_table(tmp_path: Path) -> None:
    _project(tmp_path, pyproject='[tool]\nbranchenv = "yes"\n')
    msg = str(_config_error(tmp_path, env={}))
    assert "'tool.branchenv' must be a table" in msg
    assert "pyproject.toml" in msg


def test_error_in_a_lower_source_is_reported_even_if_overridden(tmp_path: Path) -> None:
    # a typo in a file must not hide behind an env var that happens to set the same key
    _project(tmp_path, config='region = "mars"\n')
    msg = str(_config_error(tmp_path, env={"BRANCHENV_REGION": "us-east-1"}))
    assert "branchenv.toml: bad value for 'region'" in msg


@pytest.mark.parametrize(
    ("toml", "why"),
    [
        ('programs = "web"', "expected a table of programs"),
        ("[programs.default]\npath = 'x'\n", "not 'default'"),
        ("[programs.Web]\npath = 'x'\n", "lowercase"),
        ("[programs.jobs]\nengine = 'inprocess'\n", "programs.jobs.path is required"),
        ("[programs.jobs]\npath = 'j'\nmain = 'x'\n", "unknown key 'main'"),
        ("[programs.jobs]\npath = 'j'\nengine = 'chef'\n", "programs.jobs: 'chef' is not one of"),
        ("[programs.jobs]\npath = 'j'\ntemplates = { gcp = 'x.yaml' }\n", "unknown target 'gcp'"),
        ("[programs.jobs]\npath = 'j'\nproject = 'has space'\n", "a project name"),
    ],
)
def test_bad_programs_table_names_the_key_and_the_fix(tmp_path: Path, toml: str, why: str) -> None:
    _project(tmp_path, config=toml)
    msg = str(_config_error(tmp_path, env={}))
    assert "'programs'" in msg and why in msg and "branchenv.toml" in msg


def test_programs_table_reads_every_entry(tmp_path: Path) -> None:
    from branchenv.config import ProgramSetting

    _project(
        tmp_path,
        config=(
            'program = "web"\n[programs.jobs]\npath = "jobs"\nengine = "inprocess"\n'
            'project = "jobs-svc"\ntemplates = { local = "stacks/jobs-local.yaml" }\n'
        ),
    )
    s = load_settings(cwd=tmp_path, env={})
    assert s.programs == (
        ProgramSetting(
            "jobs", "jobs", "inprocess", "jobs-svc", (("local", "stacks/jobs-local.yaml"),)
        ),
    )
    assert str(s.programs[0]).startswith("jobs: jobs (engine inprocess, project jobs-svc")


@pytest.mark.parametrize(
    ("source", "value"),
    [("env", ""), ("env", ","), ("env", " , "), ("file", "protected_patterns = []")],
)
def test_an_empty_protected_pattern_list_is_a_config_error_never_no_protection(
    tmp_path: Path, source: str, value: str
) -> None:
    """Issue 15 item 3: an empty list used to disable every protection silently."""
    if source == "env":
        _project(tmp_path)
        err = _config_error(tmp_path, env={"BRANCHENV_PROTECTED_PATTERNS": value})
        assert "BRANCHENV_PROTECTED_PATTERNS" in str(err)
    else:
        _project(tmp_path, config=value + "\n")
        err = _config_error(tmp_path, env={})
    assert "'protected_patterns'" in str(err) and "disable every protection" in str(err)


def test_the_protected_rail_refuses_to_run_without_patterns() -> None:
    from branchenv.safety import check_protected

    with pytest.raises(ConfigError, match="protected_patterns is empty"):
        check_protected("feature-x", "feature/x", ())


@pytest.mark.parametrize(
    ("config", "env", "ttl", "refused_by"),
    [
        ("", {}, "30d", None),
        ("", {}, "31d", "max_ttl 30d (from default)"),
        ("", {"BRANCHENV_MAX_TTL": "60d"}, "40d", None),  # raised: the cap is configurable
        ('max_ttl = "1d"\n', {}, "2d", "max_ttl 1d (from branchenv.toml)"),
        ('max_ttl = "1d"\n', {}, "1d", None),
        ("", {"BRANCHENV_MAX_AGE": "7d"}, "10d", "max_age 7d (from env BRANCHENV_MAX_AGE)"),
        ("", {"BRANCHENV_MAX_AGE": "7d", "BRANCHENV_MAX_TTL": "3d"}, "5d", "max_ttl 3d"),
        ("", {}, "100000d", "max_ttl 30d"),  # past any date: still named as past the cap
    ],
)
def test_an_explicit_ttl_is_capped_by_max_ttl_or_max_age(
    tmp_path: Path, config: str, env: dict[str, str], ttl: str, refused_by: str | None
) -> None:
    from branchenv.config import stack_ttl
    from branchenv.errors import UsageError
    from branchenv.metadata import parse_ttl

    s = load_settings(cwd=_project(tmp_path, config=config), env=env)
    if refused_by is None:
        assert stack_ttl(s, ttl) == parse_ttl(ttl, flag=None)
        return
    with pytest.raises(UsageError) as refused:
        stack_ttl(s, ttl)
    assert refused_by in str(refused.value) and "--ttl" in str(refused.value)


def test_default_ttl_is_capped_at_max_age_and_refused_past_max_ttl(tmp_path: Path) -> None:
    from branchenv.config import stack_ttl
    from branchenv.metadata import parse_ttl

    root = _project(tmp_path, config='default_ttl = "10d"\n')
    capped = load_settings(cwd=root, env={"BRANCHENV_MAX_AGE": "7d"})
    assert stack_ttl(capped, None) == parse_ttl("7d", flag=None)
    with pytest.raises(ConfigError, match="max_ttl 5d"):
        load_settings(cwd=root, env={"BRANCHENV_MAX_TTL": "5d"})
