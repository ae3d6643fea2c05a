"""Stack metadata: TTL parsing, durations, tag encoding and the tag round trip."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from branchenv.errors import EXIT_USAGE, UsageError
from branchenv.metadata import (
    MANAGED_BY_KEY,
    MANAGED_BY_VALUE,
    MAX_TAG_VALUE_LEN,
    TAG_KEYS,
    TAG_PREFIX,
    TRUNCATION_MARK,
    MetadataFormatError,
    StackMetadata,
    decode_tag_value,
    encode_tag_value,
    format_duration,
    format_timestamp,
    parse_timestamp,
    parse_ttl,
    tag_key_problem,
    tag_value_problem,
)

NOW = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)


def make(**changes: object) -> StackMetadata:
    meta = StackMetadata.create(
        stack="feature-x-217d2bf5",
        branch="feature/x",
        owner="jane@example.com",
        commit="0123456789abcdef0123456789abcdef01234567",
        ttl=24 * H,
        now=NOW,
        target="local",
        engine="inprocess",
        region="eu-west-1",
        account="111111111111",
    )
    return dataclasses.replace(meta, **changes)  # type: ignore[arg-type]


# --- TTL ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90m", dt.timedelta(minutes=90)),
        ("24h", dt.timedelta(hours=24)),
        ("7d", dt.timedelta(days=7)),
        ("30s", dt.timedelta(seconds=30)),
        ("2w", dt.timedelta(weeks=2)),
        ("1h30m", dt.timedelta(minutes=90)),
        ("1d12h", dt.timedelta(hours=36)),
        ("1h 30m", dt.timedelta(minutes=90)),
        (" 8H ", dt.timedelta(hours=8)),
        ("0h5m", dt.timedelta(minutes=5)),
    ],
)
def test_parse_ttl_accepts(text: str, expected: dt.timedelta) -> None:
    assert parse_ttl(text) == expected


@pytest.mark.parametrize(
    "text", ["", "24", "h", "-1h", "0h", "0m0s", "1.5h", "1y", "1h-30m", "soon", "99999999999999w"]
)
def test_parse_ttl_refuses_with_the_flag_and_forms(text: str) -> None:
    with pytest.raises(UsageError, match="--ttl") as info:
        parse_ttl(text)
    assert info.value.exit_code == EXIT_USAGE
    assert "90m" in str(info.value) or "zero" in str(info.value) or "too long" in str(info.value)


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (dt.timedelta(0), "0s"),
        (dt.timedelta(milliseconds=400), "0s"),
        (dt.timedelta(seconds=45), "45s"),
        (dt.timedelta(minutes=5, seconds=10), "5m 10s"),
        (dt.timedelta(hours=3, minutes=12, seconds=59), "3h 12m"),
        (dt.timedelta(hours=10), "10h"),
        (dt.timedelta(days=2, hours=4, minutes=30), "2d 4h"),
        (dt.timedelta(days=2, minutes=30), "2d"),
        (dt.timedelta(days=14), "14d"),
        (-dt.timedelta(hours=2, minutes=3), "-2h 3m"),
    ],
)
def test_format_duration(delta: dt.timedelta, text: str) -> None:
    assert format_duration(delta) == text


@given(st.integers(min_value=1, max_value=10**7))
def test_format_duration_output_parses_back_within_its_precision(seconds: int) -> None:
    delta = dt.timedelta(seconds=seconds)
    back = parse_ttl(format_duration(delta))
    assert back <= delta
    assert delta - back < dt.timedelta(days=1)


# --- timestamps -----------------------------------------------------------------------------------


def test_timestamps_are_utc_with_z() -> None:
    plus_two = dt.timezone(dt.timedelta(hours=2))
    moment = dt.datetime(2024, 5, 1, 14, 0, 0, tzinfo=plus_two)
    assert format_timestamp(moment) == "2024-05-01T12:00:00Z"
    assert format_timestamp(moment.replace(microsecond=5)) == "2024-05-01T12:00:00.000005Z"
    assert parse_timestamp("2024-05-01T12:00:00Z") == NOW
    with pytest.raises(ValueError, match="no UTC offset"):
        parse_timestamp("2024-05-01T12:00:00")


# --- tag values -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "encoded"),
    [
        ("feature/login", "feature/login"),
        ("jane+ci@example.com", "jane+ci@example.com"),
        ("2024-05-01T12:00:00Z", "2024-05-01T12:00:00Z"),
        ("fix#12", "fix=2312"),
        ("a=b", "a=3Db"),
        ("a b", "a=20b"),
        ("café", "caf=C3=A9"),
        ("~!", "=7E=21"),
        ("", ""),
    ],
)
def test_encode_tag_value_table(text: str, encoded: str) -> None:
    assert encode_tag_value(text) == encoded
    assert decode_tag_value(encoded) == (text, False)
    assert tag_value_problem(encoded) is None


@settings(max_examples=500)
@given(st.text(max_size=300))
def test_encoded_values_are_valid_and_round_trip_when_they_fit(text: str) -> None:
    encoded = encode_tag_value(text)
    assert tag_value_problem(encoded) is None
    assert encoded.isascii()
    decoded, truncated = decode_tag_value(encoded)
    if truncated:
        assert encoded.endswith(TRUNCATION_MARK)
        assert decoded.endswith("…")
        assert text.startswith(decoded[:-1])
        assert len(encoded) <= MAX_TAG_VALUE_LEN
    else:
        assert decoded == text


def test_long_value_is_cut_on_a_character_boundary() -> None:
    text = "é" * 100  # 6 encoded chars each
    encoded = encode_tag_value(text)
    assert len(encoded) <= MAX_TAG_VALUE_LEN
    assert encoded.endswith(TRUNCATION_MARK)
    assert decode_tag_value(encoded) == ("é" * 42 + "…", True)


@pytest.mark.parametrize("value", ["=", "=4", "=zz", "a=G1", "=FF"])
def test_decode_refuses_malformed_values(value: str) -> None:
    with pytest.raises(ValueError):
        decode_tag_value(value)


@pytest.mark.parametrize(
    ("value", "ok"),
    [("plain", True), ("ünïcode letters", True), ("a#b", False), ("x" * 257, False)],
)
def test_tag_value_problem(value: str, ok: bool) -> None:
    assert (tag_value_problem(value) is None) is ok


# --- keys -----------------------------------------------------------------------------------------


def test_every_key_is_valid_and_prefixed() -> None:
    for key in TAG_KEYS:
        assert key.startswith(TAG_PREFIX)
        assert tag_key_problem(key) is None, key
    assert set(make().to_tags()) == set(TAG_KEYS)


@pytest.mark.parametrize("key", ["", "k" * 41, "has space", "aws:thing", "a/b"])
def test_tag_key_problem(key: str) -> None:
    assert tag_key_problem(key) is not None


# --- the metadata ---------------------------------------------------------------------------------


def test_create_sets_expiry_and_cuts_microseconds() -> None:
    meta = StackMetadata.create(
        stack="s1",
        branch="b",
        owner="o",
        commit="c",
        ttl=2 * H,
        now=NOW.replace(microsecond=999),
        target="aws",
        engine="pulumi",
    )
    assert meta.created_at == NOW
    assert meta.expires_at == NOW + 2 * H
    assert meta.managed and not meta.reap_pending and meta.project == "branchenv"


def test_create_refuses_a_non_positive_ttl() -> None:
    with pytest.raises(UsageError, match="--ttl"):
        make().create(
            stack="s",
            branch="b",
            owner="o",
            commit="c",
            ttl=dt.timedelta(0),
            now=NOW,
            target="local",
            engine="pulumi",
        )


def test_naive_datetimes_unknown_target_and_malformed_engine_names_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        make(created_at=NOW.replace(tzinfo=None))
    with pytest.raises(ValueError, match="target"):
        make(target="gcp")
    for bad in ("", "Terraform", "tf engine", "x" * 41):
        with pytest.raises(ValueError, match="engine"):
            make(engine=bad)


@pytest.mark.parametrize("engine", ["terraform", "inprocess", "pulumi", "my-engine_2"])
def test_any_engine_name_round_trips_so_a_new_engine_stays_managed(engine: str) -> None:
    # Which engines exist is the registry's business: a stack made by an engine this
    # installation lacks must still read as managed (never unmanaged, never swept around).
    meta = make(engine=engine)
    assert StackMetadata.from_tags(meta.to_tags()) == meta


def test_identity_tags_are_the_unchanging_subset_of_the_stack_tags() -> None:
    first = make()
    later = dataclasses.replace(
        first,
        expires_at=first.expires_at + dt.timedelta(days=3),
        commit="f00dfeed",
        reap_pending=True,
    )
    identity = first.identity_tags()
    assert identity == later.identity_tags()
    assert identity.items() <= first.to_tags().items()
    assert set(identity) == {
        "branchenv:managed-by",
        "branchenv:stack",
        "branchenv:branch",
        "branchenv:project",
        "branchenv:owner",
        "branchenv:created-at",
        "branchenv:target",
        "branchenv:engine",
    }
    assert later.to_tags()["branchenv:expires-at"] != first.to_tags()["branchenv:expires-at"]


def test_datetimes_are_normalized_to_utc() -> None:
    plus_two = dt.timezone(dt.timedelta(hours=2))
    meta = make(created_at=NOW.astimezone(plus_two))
    assert meta.created_at.tzinfo is dt.UTC
    assert meta.created_at == NOW


@pytest.mark.parametrize(
    ("now", "expired", "age", "left"),
    [
        (NOW, False, dt.timedelta(0), 24 * H),
        (NOW + 23 * H, False, 23 * H, H),
        (NOW + 24 * H, True, 24 * H, dt.timedelta(0)),
        (NOW + 30 * H, True, 30 * H, -6 * H),
    ],
)
def test_expiry_age_and_time_left(
    now: dt.datetime, expired: bool, age: dt.timedelta, left: dt.timedelta
) -> None:
    meta = make()
    assert meta.expired(now) is expired
    assert meta.age(now) == age
    assert meta.expires_in(now) == left


def test_to_tags_table() -> None:
    tags = make(branch="fix#12 ~x", reap_pending=True).to_tags()
    assert tags == {
        MANAGED_BY_KEY: MANAGED_BY_VALUE,
        "branchenv:stack": "feature-x-217d2bf5",
        "branchenv:branch": "fix=2312=20=7Ex",
        "branchenv:owner": "jane@example.com",
        "branchenv:commit": "0123456789abcdef0123456789abcdef01234567",
        "branchenv:created-at": "2024-05-01T12:00:00Z",
        "branchenv:expires-at": "2024-05-02T12:00:00Z",
        "branchenv:target": "local",
        "branchenv:engine": "inprocess",
        "branchenv:reap-pending": "true",
        "branchenv:project": "branchenv",
        "branchenv:region": "eu-west-1",
        "branchenv:account": "111111111111",
    }


def test_from_tags_without_marker_is_none() -> None:
    tags = make().to_tags()
    del tags[MANAGED_BY_KEY]
    assert StackMetadata.from_tags(tags) is None
    assert StackMetadata.from_tags({**tags, MANAGED_BY_KEY: "someone-else"}) is None
    assert StackMetadata.from_tags({}) is None
    assert make(managed=False).to_tags().get(MANAGED_BY_KEY) is None


def test_from_tags_ignores_extra_keys_and_defaults_optional_ones() -> None:
    tags = {**make().to_tags(), "Name": "x", "aws:cloudformation:stack-name": "y"}
    for key in ("branchenv:owner", "branchenv:commit", "branchenv:reap-pending"):
        del tags[key]
    meta = StackMetadata.from_tags(tags)
    assert meta is not None
    assert (meta.owner, meta.commit, meta.reap_pending) == ("unknown", "unknown", False)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("branchenv:stack", None, "lack 'branchenv:stack'"),
        ("branchenv:stack", "", "is empty"),
        ("branchenv:branch", None, "lack 'branchenv:branch'"),
        ("branchenv:created-at", "yesterday", "not a UTC timestamp"),
        ("branchenv:expires-at", "2024-05-01T12:00:00", "not a UTC timestamp"),
        ("branchenv:target", "gcp", "unknown target"),
        ("branchenv:engine", "TF!", "not an engine name"),
        ("branchenv:reap-pending", "maybe", "reap-pending"),
        ("branchenv:branch", "bad=escape", "bad escape"),
    ],
)
def test_from_tags_refuses_malformed_managed_tags(
    key: str, value: str | None, message: str
) -> None:
    tags = make().to_tags()
    if value is None:
        del tags[key]
    else:
        tags[key] = value
    with pytest.raises(MetadataFormatError, match=message):
        StackMetadata.from_tags(tags)


aware_times = st.datetimes(
    min_value=dt.datetime(2000, 1, 1),
    max_value=dt.datetime(2200, 1, 1),
    timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=-7))]),
)


@settings(max_examples=500)
@given(
    branch=st.text(max_size=300),
    owner=st.text(max_size=60),
    commit=st.from_regex(r"[0-9a-f]{40}|unknown", fullmatch=True),
    created=aware_times,
    ttl_s=st.integers(min_value=1, max_value=10**8),
    target=st.sampled_from(["local", "aws"]),
    engine=st.sampled_from(["pulumi", "inprocess"]),
    reap_pending=st.booleans(),
)
def test_tags_are_valid_and_round_trip(
    branch: str,
    owner: str,
    commit: str,
    created: dt.datetime,
    ttl_s: int,
    target: str,
    engine: str,
    reap_pending: bool,
) -> None:
    meta = StackMetadata(
        stack="s-" + commit[:7],
        branch=branch,
        owner=owner,
        commit=commit,
        created_at=created,
        expires_at=created + dt.timedelta(seconds=ttl_s),
        target=target,  # type: ignore[arg-type]
        engine=engine,  # type: ignore[arg-type]
        reap_pending=reap_pending,
    )
    tags = meta.to_tags()
    for key, value in tags.items():
        assert tag_key_problem(key) is None
        assert tag_value_problem(value) is None, (key, value)
    back = StackMetadata.from_tags(tags)
    assert back is not None
    expected = meta
    for field in ("branch", "owner"):
        original: str = getattr(meta, field)
        if decode_tag_value(encode_tag_value(original))[1]:
            # Too long to keep whole: the kept head is marked with "…".
            kept: str = getattr(back, field)
            assert kept.endswith("…") and original.startswith(kept[:-1])
            expected = dataclasses.replace(expected, **{field: kept})  # type: ignore[arg-type]
    assert back == expected


def test_a_very_long_branch_is_stored_truncated_and_the_stack_stays_the_identity() -> None:
    branch = "feature/" + "x" * 300
    meta = make(branch=branch)
    tags = meta.to_tags()
    assert len(tags["branchenv:branch"]) == MAX_TAG_VALUE_LEN
    assert tags["branchenv:branch"].endswith(TRUNCATION_MARK)
    back = StackMetadata.from_tags(tags)
    assert back is not None
    assert back.branch == branch[: MAX_TAG_VALUE_LEN - len(TRUNCATION_MARK)] + "…"
    assert back.stack == meta.stack
    assert dataclasses.replace(back, branch=branch) == meta


# --- region and account (issue 18) ----------------------------------------------------------


def test_region_and_account_round_trip_and_are_optional() -> None:
    meta = make()
    tags = meta.to_tags()
    assert tags["branchenv:region"] == "eu-west-1"
    assert tags["branchenv:account"] == "111111111111"
    assert StackMetadata.from_tags(tags) == meta
    old = make(region=None, account=None)
    assert "branchenv:region" not in old.to_tags()
    assert "branchenv:account" not in old.to_tags()
    back = StackMetadata.from_tags(old.to_tags())
    assert back is not None and back.region is None and back.account is None
    # Not resource tags: the identity set is unchanged, so no resource is retagged.
    assert "branchenv:region" not in meta.identity_tags()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("branchenv:region", "Europe"),
        ("branchenv:account", "12345"),
        ("branchenv:account", "x" * 12),
    ],
)
def test_malformed_region_or_account_needs_attention(key: str, value: str) -> None:
    with pytest.raises(MetadataFormatError):
        StackMetadata.from_tags({**make().to_tags(), key: value})
