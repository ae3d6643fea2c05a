"""The git gateway against real git repositories in temporary directories."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from branchenv.errors import EXIT_USAGE, OperationFailed, UsageError
from branchenv.gitinfo import (
    BranchInfo,
    current_commit,
    detect_branch,
    detect_owner,
    redact,
    remote_heads,
    run_git,
)

pytestmark = pytest.mark.skipif(
    subprocess.run(["git", "--version"], capture_output=True).returncode != 0,
    reason="needs the git executable",
)


@pytest.fixture(autouse=True)
def isolated_git(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No user or system git config: identities come only from what each test sets."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / "gitconfig"))
    for var in ("GIT_DIR", "GIT_WORK_TREE", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL", "EMAIL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Test Author")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Test Author")


def git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_EMAIL": "author@example.com",
        "GIT_COMMITTER_EMAIL": "author@example.com",
    }
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def commit(repo: Path, name: str) -> str:
    (repo / name).write_text(name)
    git(repo, "add", name)
    git(repo, "commit", "-q", "-m", f"add {name}")
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "dev@example.com")
    commit(path, "a.txt")
    return path


# --- detect_branch ------------------------------------------------------------------------------


def test_branch_from_the_checkout(repo: Path) -> None:
    assert detect_branch(None, env={}, cwd=repo) == BranchInfo("main", "git", False)
    git(repo, "checkout", "-q", "-b", "feature/Login#2")
    assert detect_branch(None, env={}, cwd=repo) == BranchInfo("feature/Login#2", "git", False)


def test_branch_from_a_subdirectory(repo: Path) -> None:
    sub = repo / "deep" / "er"
    sub.mkdir(parents=True)
    assert detect_branch(None, env={}, cwd=sub).name == "main"


def test_branch_of_a_repository_without_commits(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q", "-b", "trunk")
    assert detect_branch(None, env={}, cwd=tmp_path) == BranchInfo("trunk", "git", False)
    assert current_commit(tmp_path) == "unknown"


def test_detached_head_uses_the_short_commit(repo: Path) -> None:
    first = git(repo, "rev-parse", "HEAD")
    commit(repo, "b.txt")
    git(repo, "checkout", "-q", "--detach", first)
    info = detect_branch(None, env={}, cwd=repo)
    assert info == BranchInfo(f"detached-{first[:7]}", "git", True)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"GITHUB_HEAD_REF": "pr-branch", "GITHUB_REF_NAME": "12/merge"},
            BranchInfo("pr-branch", "GITHUB_HEAD_REF", False),
        ),
        (
            {"GITHUB_HEAD_REF": "", "GITHUB_REF_NAME": "push-branch"},
            BranchInfo("push-branch", "GITHUB_REF_NAME", False),
        ),
        (
            {"GITHUB_REF_NAME": "gh", "CI_COMMIT_REF_NAME": "gl"},
            BranchInfo("gh", "GITHUB_REF_NAME", False),
        ),
        ({"CI_COMMIT_REF_NAME": "gl-branch"}, BranchInfo("gl-branch", "CI_COMMIT_REF_NAME", False)),
        ({"CI_COMMIT_REF_NAME": "  "}, BranchInfo("main", "git", False)),
    ],
)
def test_ci_variables_come_before_git(
    repo: Path, env: dict[str, str], expected: BranchInfo
) -> None:
    assert detect_branch(None, env=env, cwd=repo) == expected


def test_the_flag_comes_first(repo: Path) -> None:
    env = {"GITHUB_HEAD_REF": "pr-branch"}
    assert detect_branch(" mine ", env=env, cwd=repo) == BranchInfo("mine", "flag", False)
    with pytest.raises(UsageError, match="--branch"):
        detect_branch("", env=env, cwd=repo)


def test_outside_git_without_flag_or_ci_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--branch NAME") as info:
        detect_branch(None, env={}, cwd=tmp_path)
    assert info.value.exit_code == EXIT_USAGE
    assert "\n" not in str(info.value)
    # ...but CI variables or the flag still work there.
    assert detect_branch(None, env={"CI_COMMIT_REF_NAME": "x"}, cwd=tmp_path).name == "x"
    with pytest.raises(UsageError, match="--branch NAME"):
        detect_branch(None, env={}, cwd=tmp_path / "missing")


def test_without_git_on_path_the_error_names_the_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(UsageError, match="--branch NAME"):
        detect_branch(None, env={}, cwd=tmp_path)
    with pytest.raises(OperationFailed, match="git is not installed"):
        run_git(["--version"])
    assert current_commit(tmp_path) == "unknown"


# --- commit and owner ---------------------------------------------------------------------------


def test_current_commit(repo: Path, tmp_path: Path) -> None:
    head = commit(repo, "c.txt")
    assert current_commit(repo) == head
    assert len(head) == 40
    outside = tmp_path / "plain"
    outside.mkdir()
    assert current_commit(outside) == "unknown"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"GITHUB_ACTOR": "octocat", "GITLAB_USER_LOGIN": "gl", "USER": "u"}, "octocat"),
        ({"GITLAB_USER_LOGIN": "gl-user", "USER": "u"}, "gl-user"),
        ({"GITHUB_ACTOR": " ", "USER": "u"}, "dev@example.com"),
        ({"USER": "u"}, "dev@example.com"),
    ],
)
def test_owner_from_ci_then_git(repo: Path, env: dict[str, str], expected: str) -> None:
    assert detect_owner(env=env, cwd=repo) == expected


def test_owner_falls_back_to_user_then_unknown(tmp_path: Path) -> None:
    assert detect_owner(env={"USER": "local-user"}, cwd=tmp_path) == "local-user"
    assert detect_owner(env={}, cwd=tmp_path) == "unknown"


def test_owner_from_global_git_config_outside_a_repo(tmp_path: Path) -> None:
    git(tmp_path, "config", "--global", "user.email", "global@example.com")
    assert detect_owner(env={"USER": "u"}, cwd=tmp_path) == "global@example.com"


# --- remote heads -------------------------------------------------------------------------------


def test_remote_heads_of_a_bare_remote_follow_deletions(repo: Path, tmp_path: Path) -> None:
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(repo, "remote", "add", "origin", str(bare))
    for branch in ("feature/a", "feature/b", "fix-c"):
        git(repo, "branch", branch)
    git(repo, "push", "-q", "origin", "main", "feature/a", "feature/b", "fix-c", "--tags")
    git(repo, "tag", "v1")
    git(repo, "push", "-q", "origin", "v1")

    assert remote_heads(str(bare)) == {"main", "feature/a", "feature/b", "fix-c"}
    git(repo, "push", "-q", "origin", "--delete", "feature/b", "fix-c")
    assert remote_heads(str(bare)) == {"main", "feature/a"}
    # A remote name resolves in the repository given as cwd.
    assert remote_heads("origin", cwd=repo) == {"main", "feature/a"}


def test_remote_heads_of_an_empty_remote(tmp_path: Path) -> None:
    bare = tmp_path / "empty.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    assert remote_heads(str(bare)) == set()


def test_unreadable_remote_is_a_clear_failure(repo: Path, tmp_path: Path) -> None:
    with pytest.raises(OperationFailed, match="cannot list the branches of git remote") as info:
        remote_heads(str(tmp_path / "no-such.git"))
    assert "does not appear to be a git repository" in str(info.value)
    with pytest.raises(OperationFailed, match="'nope'"):
        remote_heads("nope", cwd=repo)
    with pytest.raises(UsageError):
        remote_heads("--upload-pack=touch /tmp/x")


def test_credentials_in_remote_urls_are_not_shown(tmp_path: Path) -> None:
    url = "https://user:s3cret-token@127.0.0.1:9/repo.git"
    with pytest.raises(OperationFailed) as info:
        remote_heads(url, cwd=tmp_path)
    assert "s3cret-token" not in str(info.value)
    assert "https://***@127.0.0.1:9/repo.git" in str(info.value)
    assert (
        redact("see ssh://me@host/x and http://a:b@c/") == "see ssh://***@host/x and http://***@c/"
    )


# --- the gateway itself ---------------------------------------------------------------------------


def test_run_git_reports_failures_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(OperationFailed, match=r"`git rev-parse HEAD` failed \(exit 128\)") as info:
        run_git(["rev-parse", "HEAD"], cwd=tmp_path)
    assert "\n" not in str(info.value)
    result = run_git(["rev-parse", "HEAD"], cwd=tmp_path, check=False)
    assert result.returncode == 128 and "not a git repository" in result.stderr


def test_run_git_is_non_interactive_and_bounded(tmp_path: Path) -> None:
    # A "git" whose only job is to print what it sees, then hang: the timeout must end it.
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    fake = fake_bin / "git"
    fake.write_text(
        "#!/bin/sh\n"
        'echo "prompt=$GIT_TERMINAL_PROMPT"\n'
        'if [ "$1" = hang ]; then sleep 30; fi\n'
        "read line && echo got-stdin\n"
    )
    fake.chmod(0o755)
    env_path = f"{fake_bin}{os.pathsep}{os.environ.get('PATH', '')}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", env_path)
        assert run_git(["status"], check=False).stdout == "prompt=0"
        with pytest.raises(OperationFailed, match=r"did not finish within 0\.5s"):
            run_git(["hang"], timeout=0.5)
