"""Kubernetes naming rules (branchenv.k8s_names): tables of valid and invalid texts, and
label_value's encoding of any text into a valid, distinct label value."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from branchenv.k8s_names import (
    dns1035_label_problem,
    dns1123_label_problem,
    dns1123_subdomain_problem,
    label_value,
    label_value_problem,
    qualified_name_problem,
)


@pytest.mark.parametrize(
    ("rule", "text", "valid"),
    [
        (dns1123_label_problem, "feature-x-1a2b3c4d", True),
        (dns1123_label_problem, "0abc", True),
        (dns1123_label_problem, "a" * 63, True),
        (dns1123_label_problem, "a" * 64, False),
        (dns1123_label_problem, "Main", False),
        (dns1123_label_problem, "-abc", False),
        (dns1123_label_problem, "abc-", False),
        (dns1123_label_problem, "a.b", False),
        (dns1123_label_problem, "", False),
        (dns1035_label_problem, "orders", True),
        (dns1035_label_problem, "0rders", False),
        (dns1123_subdomain_problem, "branches.example.com", True),
        (dns1123_subdomain_problem, "a..b", False),
        (dns1123_subdomain_problem, "Example.com", False),
        (dns1123_subdomain_problem, ".".join(["a" * 63] * 4), False),
        (label_value_problem, "", True),
        (label_value_problem, "feature-ABC-123_fix.v2", True),
        (label_value_problem, "feature/x", False),
        (label_value_problem, "_x", False),
        (label_value_problem, "x" * 64, False),
        (qualified_name_problem, "app.kubernetes.io/managed-by", True),
        (qualified_name_problem, "janitor/ttl", True),
        (qualified_name_problem, "plain", True),
        (qualified_name_problem, "/x", False),
        (qualified_name_problem, "Bad_Prefix/x", False),
        (qualified_name_problem, "branchenv.dev/", False),
        (qualified_name_problem, "branchenv.dev/" + "k" * 64, False),
    ],
)
def test_rules(rule: object, text: str, valid: bool) -> None:
    problem = rule(text)  # type: ignore[operator]
    assert (problem is None) is valid, problem


@given(st.text(max_size=400))
def test_label_value_is_always_valid(text: str) -> None:
    value = label_value(text)
    assert label_value_problem(value) is None, value
    if label_value_problem(text) is None:
        assert value == text


@given(st.text(min_size=1, max_size=80), st.text(min_size=1, max_size=80))
def test_label_value_keeps_distinct_texts_apart(a: str, b: str) -> None:
    if a != b and label_value_problem(a) is not None and label_value_problem(b) is not None:
        assert label_value(a) != label_value(b)
