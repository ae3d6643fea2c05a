"""Branch → names: validity under every target rule, determinism and uniqueness."""

from __future__ import annotations

import hashlib
import random
import re
import string

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from branchenv.errors import EXIT_USAGE, NamingError
from branchenv.naming import (
    HASH_LEN,
    MAX_GLOBAL_SUFFIX_LEN,
    MAX_PREFIX_LEN,
    MAX_SUFFIX_LEN,
    RULES,
    branch_hash,
    check_name,
    global_resource_name,
    names_for,
    resource_name,
    violations,
)

PREFIX_SHAPE = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")
LONGEST_SUFFIX = "-" + "-".join(["abcdefghijk", "lmnopqrstuv"])  # 24 chars with its hyphen
assert len(LONGEST_SUFFIX) == MAX_SUFFIX_LEN

# Branches as people write them, plus the awkward ones.
branch_text = st.one_of(
    st.text(max_size=120),
    st.text(alphabet="aAzZ09-_/.#~!@ éß機", max_size=80),
    st.from_regex(r"[a-z][a-z0-9]{0,10}(/[A-Za-z0-9._-]{1,30}){0,3}", fullmatch=True),
)


def assert_valid_prefix(prefix: str) -> None:
    assert PREFIX_SHAPE.fullmatch(prefix), prefix
    assert 3 <= len(prefix) <= MAX_PREFIX_LEN, prefix
    assert "--" not in prefix
    assert violations(prefix) == {}, prefix
    full = resource_name(prefix, LONGEST_SUFFIX)
    assert len(full) <= 63
    assert violations(full) == {}, full


@pytest.mark.parametrize(
    ("branch", "prefix"),
    [
        ("main", "main"),
        ("feature-login", "feature-login"),
        ("dev", "dev"),
        ("release-2024-05", "release-2024-05"),
    ],
)
def test_clean_branches_are_used_as_is(branch: str, prefix: str) -> None:
    names = names_for(branch)
    assert (names.prefix, names.stack, names.hashed, names.branch) == (
        prefix,
        prefix,
        False,
        branch,
    )


@pytest.mark.parametrize(
    ("branch", "head"),
    [
        ("Main", "main"),
        ("feature/x", "feature-x"),
        ("feature/JIRA-123_login", "feature-jira-123-login"),
        ("release/v1.2.3", "release-v1-2-3"),
        ("fix--double", "fix-double"),
        ("trailing-", "trailing"),
        ("123-hotfix", "b-123-hotfix"),
        ("sthree-thing", "b-sthree-thing"),
        ("sthree", "b-sthree"),
        ("amzn-s3-demo-x", "b-amzn-s3-demo-x"),
        ("xn--bucket", "xn-bucket"),
        ("café", "cafe"),
        ("cafe\u0301-x", "cafe-x"),  # decomposed accent is dropped, not a separator
        ("Straße/Łódź", "strasse-lodz"),
        ("機能/login", "login"),
        ("機能", "b"),
        ("qa", "qa"),  # too short for an S3 bucket on its own
        ("fix-deadbeef", "fix-deadbeef"),  # looks hashed: hashed again
        ("a" * 100, "a" * (MAX_PREFIX_LEN - 1 - HASH_LEN)),
    ],
)
def test_lossy_branches_get_a_readable_head_and_a_hash(branch: str, head: str) -> None:
    names = names_for(branch)
    assert names.hashed
    assert names.prefix == f"{head}-{branch_hash(branch)}"
    assert names.stack == names.prefix
    assert_valid_prefix(names.prefix)


def test_branch_hash_is_pinned() -> None:
    # Pinned: a change here renames every existing stack, orphaning it from its branch.
    assert branch_hash("Main") == hashlib.sha256(b"Main").hexdigest()[:HASH_LEN] == "eb814be3"
    assert names_for("Feature/X").prefix == "feature-x-02cc1910"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("feature/x", "feature-x"),
        ("Main", "main"),
        ("fix_x", "fix-x"),
        ("café", "cafe"),
        ("1fix", "b-1fix"),
        ("a" * 100, "a" * 101),
        ("x" * 31 + "-1", "x" * 31 + "-2"),
        ("qa", "QA"),
        ("feat/a.b", "feat/a-b"),
    ],
)
def test_confusable_branches_get_distinct_prefixes(a: str, b: str) -> None:
    assert names_for(a).prefix != names_for(b).prefix


def test_a_branch_named_like_a_hashed_prefix_does_not_take_it_over() -> None:
    taken = names_for("Feature/X").prefix
    impostor = names_for(taken)
    assert impostor.hashed
    assert impostor.prefix != taken


@pytest.mark.parametrize("branch", ["", " ", "\t\n", "---", "///", "!?#", "-_-", "  .  "])
def test_branches_with_nothing_usable_are_refused(branch: str) -> None:
    with pytest.raises(NamingError, match="--branch NAME") as info:
        names_for(branch)
    assert info.value.exit_code == EXIT_USAGE
    assert "\n" not in str(info.value)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(branch_text)
def test_every_prefix_is_valid_everywhere_and_deterministic(branch: str) -> None:
    try:
        names = names_for(branch)
    except NamingError:
        assert not any(ch.isalnum() for ch in branch)
        return
    assert_valid_prefix(names.prefix)
    assert names_for(branch) == names
    assert names.hashed == (names.prefix != branch)


@settings(max_examples=500)
@given(branch_text, branch_text)
def test_distinct_branches_give_distinct_prefixes(a: str, b: str) -> None:
    assume(a != b)
    try:
        pa, pb = names_for(a).prefix, names_for(b).prefix
    except NamingError:
        assume(False)
        raise
    assert pa != pb


def _sample_branches(count: int, seed: int = 20240501) -> list[str]:
    """Distinct branches chosen to collide if the naming were careless."""
    rng = random.Random(seed)
    words = ["feature", "fix", "main", "release", "JIRA", "login", "sthree", "x", "deadbeef", "v1"]
    seps = ["/", "-", "_", ".", "--", "#", " ", "é", "機"]
    found: set[str] = set()
    while len(found) < count:
        parts = [rng.choice(words) for _ in range(rng.randint(1, 4))]
        if rng.random() < 0.3:
            parts.append(str(rng.randint(0, 99999)))
        if rng.random() < 0.1:
            parts.append("".join(rng.choices(string.ascii_lowercase, k=rng.randint(30, 60))))
        branch = parts[0]
        for part in parts[1:]:
            branch += rng.choice(seps) + part
        variants = [branch, branch.lower(), branch.upper(), branch.replace("/", "-")]
        found.update(v for v in variants if v.strip())
    return sorted(found)[:count]


def test_no_collisions_over_a_large_sample() -> None:
    branches = set(_sample_branches(20_000))
    # Every derived prefix is also a branch someone could create.
    branches |= {names_for(b).prefix for b in branches}
    by_prefix: dict[str, str] = {}
    for branch in branches:
        prefix = names_for(branch).prefix
        assert by_prefix.setdefault(prefix, branch) == branch, (prefix, branch)
    assert len(by_prefix) == len(branches) > 20_000


# --- resource_name ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("suffix", "expected"),
    [("orders", "main-orders"), ("-orders-handler-role", "main-orders-handler-role")],
)
def test_resource_name_joins_with_one_hyphen(suffix: str, expected: str) -> None:
    assert resource_name("main", suffix) == expected


@pytest.mark.parametrize(
    ("prefix", "suffix", "message"),
    [
        ("main", "x" * MAX_SUFFIX_LEN, "limit is 24"),
        ("main", "Orders", "lowercase"),
        ("main", "orders--dlq", "lowercase"),
        ("main", "", "lowercase"),
        ("main", "s3alias", "reserved"),
        ("Main", "orders", "not a branchenv prefix"),
        ("main-", "orders", "not a branchenv prefix"),
        ("m" * (MAX_PREFIX_LEN + 1), "orders", "not a branchenv prefix"),
    ],
)
def test_resource_name_refuses_what_would_break_a_rule(
    prefix: str, suffix: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        resource_name(prefix, suffix)


# --- global_resource_name (S3 bucket names are one namespace for every AWS account) --------

ACCOUNT = "123456789012"
OTHER_ACCOUNT = "210987654321"


@pytest.mark.parametrize("branch", ["dev", "test", "feature-login", "main"])
def test_common_branches_get_bucket_names_no_other_account_can_claim(branch: str) -> None:
    prefix = names_for(branch).prefix
    ours = global_resource_name(prefix, "artifacts", ACCOUNT)
    theirs = global_resource_name(prefix, "artifacts", OTHER_ACCOUNT)
    assert ours == f"{branch}-artifacts-{ACCOUNT}"
    assert ours != theirs
    assert ours.startswith(prefix + "-")  # still derived from the stack's prefix
    check_name("s3_bucket", ours)


@given(branch_text, st.from_regex(r"[0-9]{12}", fullmatch=True))
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_global_names_fit_every_rule_for_the_longest_prefix_and_suffix(
    branch: str, account: str
) -> None:
    assume(any(ch.isalnum() for ch in branch))
    prefix = names_for(branch).prefix
    longest = "-" + "a" * (MAX_GLOBAL_SUFFIX_LEN - 1)
    name = global_resource_name(prefix, longest, account)
    assert len(name) <= 63
    assert violations(name, ("s3_bucket", "k8s_label")) == {}, name
    assert name.startswith(prefix + "-") and name.endswith("-" + account)


def test_the_global_suffix_budget_holds_the_demo_bucket() -> None:
    assert MAX_GLOBAL_SUFFIX_LEN == 63 - MAX_PREFIX_LEN - 1 - 12
    assert len("-artifacts") <= MAX_GLOBAL_SUFFIX_LEN


@pytest.mark.parametrize(
    ("suffix", "account", "message"),
    [
        ("artifacts", "12345", "12 digits"),
        ("artifacts", "12345678901x", "12 digits"),
        ("a" * MAX_GLOBAL_SUFFIX_LEN, ACCOUNT, f"limit is {MAX_GLOBAL_SUFFIX_LEN}"),
        ("Artifacts", ACCOUNT, "lowercase"),
    ],
)
def test_global_resource_name_refuses_bad_parts(suffix: str, account: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        global_resource_name("main", suffix, account)


# --- the rules ----------------------------------------------------------------------------------

VALID = {
    "s3_bucket": ["abc", "my.bucket-1", "a" * 63],
    "iam_role": ["Role_+=,.@-x", "r" * 64],
    "lambda_function": ["Fn_name-1", "f" * 64],
    "sqs_queue": ["Queue_1-x", "q.fifo", "q" * 75 + ".fifo", "q" * 80],
    "dynamodb_table": ["Tab", "t.a_b-c", "t" * 255],
    "log_group": ["/aws/lambda/fn", "a#b._-/c", "l" * 512],
    "k8s_label": ["a", "ns-1", "a" * 63],
    "pulumi_stack": ["Dev.stack_1-x", "s" * 100],
}
INVALID = {
    "s3_bucket": [
        "ab",
        "a" * 64,
        "Upper",
        "under_score",
        "-start",
        "end-",
        "a..b",
        "192.168.1.1",
        "xn--abc",
        "sthree-abc",
        "amzn-s3-demo-x",
        "abc-s3alias",
        "abc--ol-s3",
        "abc.mrap",
        "abc--x-s3",
    ],
    "iam_role": ["", "r" * 65, "has space", "slash/no", "ü"],
    "lambda_function": ["", "f" * 65, "dot.no", "colon:no"],
    "sqs_queue": ["", "q" * 81, ".fifo", "dot.no", "q" * 76 + ".fifo"],
    "dynamodb_table": ["ab", "t" * 256, "slash/no", "space no"],
    "log_group": ["", "l" * 513, "space no", "colon:no", "aws/reserved"],
    "k8s_label": ["", "A", "-a", "a-", "a_b", "a.b", "a" * 64],
    "pulumi_stack": ["", "s" * 101, "slash/no", "space no"],
}


def test_rule_tables_cover_every_rule() -> None:
    assert set(VALID) == set(RULES) == set(INVALID)


@pytest.mark.parametrize(("kind", "name"), [(k, n) for k, ns in VALID.items() for n in ns])
def test_valid_names_pass(kind: str, name: str) -> None:
    assert RULES[kind](name) is None
    check_name(kind, name)


@pytest.mark.parametrize(("kind", "name"), [(k, n) for k, ns in INVALID.items() for n in ns])
def test_invalid_names_fail_with_a_reason(kind: str, name: str) -> None:
    reason = RULES[kind](name)
    assert isinstance(reason, str) and reason
    with pytest.raises(ValueError, match=f"not a valid {kind} name"):
        check_name(kind, name)


def test_check_name_lists_the_kinds_on_a_wrong_kind() -> None:
    with pytest.raises(ValueError, match="Valid kinds: s3_bucket, iam_role"):
        check_name("bucket", "abc")


def test_violations_reports_each_broken_rule() -> None:
    found = violations("Has_Upper")
    assert set(found) == {"s3_bucket", "k8s_label"}
    assert violations("Has_Upper", ("iam_role",)) == {}
