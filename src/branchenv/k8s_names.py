"""Kubernetes naming rules: object names, label keys and values, annotation keys, hosts.

Each ``*_problem`` function returns None for a valid text, else the reason it is not. The
rules are those the API server applies (``k8s.io/apimachinery/pkg/util/validation``), which the
published JSON schemas leave out: a manifest can pass schema validation with a name the server
rejects. :func:`label_value` turns any text into a valid label value.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

MAX_LABEL_VALUE_LEN = 63
MAX_DNS_LABEL_LEN = 63
MAX_DNS_SUBDOMAIN_LEN = 253
MAX_ANNOTATIONS_BYTES = 256 * 1024
"""The API server's limit on the total size of an object's annotations (keys plus values)."""

_DNS1123_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?")
_DNS1035_LABEL = re.compile(r"[a-z](?:[-a-z0-9]*[a-z0-9])?")
_NAME_PART = re.compile(r"[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?")
_NOT_LABEL_CHAR = re.compile(r"[^A-Za-z0-9_.-]+")
_HASH_LEN = 8


def dns1123_label_problem(name: str) -> str | None:
    """Namespace names and similar: 1-63 of ``[a-z0-9-]``, alphanumeric at both ends."""
    if not 1 <= len(name) <= MAX_DNS_LABEL_LEN:
        return f"{name!r} must be 1-{MAX_DNS_LABEL_LEN} characters (is {len(name)})"
    if _DNS1123_LABEL.fullmatch(name) is None:
        return (
            f"{name!r} must be lowercase letters, digits and '-', "
            "starting and ending with a letter or digit (RFC 1123 label)"
        )
    return None


def dns1035_label_problem(name: str) -> str | None:
    """Service names: an RFC 1123 label that starts with a letter."""
    problem = dns1123_label_problem(name)
    if problem is not None:
        return problem
    if _DNS1035_LABEL.fullmatch(name) is None:
        return f"{name!r} must start with a letter (RFC 1035 label)"
    return None


def dns1123_subdomain_problem(name: str) -> str | None:
    """Most object names and hosts: dot-separated RFC 1123 labels, 1-253 characters in all."""
    if not 1 <= len(name) <= MAX_DNS_SUBDOMAIN_LEN:
        return f"{name!r} must be 1-{MAX_DNS_SUBDOMAIN_LEN} characters (is {len(name)})"
    for part in name.split("."):
        problem = dns1123_label_problem(part)
        if problem is not None:
            return f"{name!r} is not an RFC 1123 subdomain: {problem}"
    return None


def label_value_problem(value: str) -> str | None:
    """Label values: empty, or 1-63 of ``[A-Za-z0-9_.-]`` with alphanumeric ends."""
    if len(value) > MAX_LABEL_VALUE_LEN:
        return f"label value {value[:40]!r}... is {len(value)} characters; the limit is 63"
    if value and _NAME_PART.fullmatch(value) is None:
        return (
            f"label value {value!r} must be letters, digits, '-', '_' and '.', "
            "starting and ending with a letter or digit"
        )
    return None


def qualified_name_problem(key: str) -> str | None:
    """Label and annotation keys: ``[prefix/]name``, prefix an RFC 1123 subdomain, name 1-63 of
    ``[A-Za-z0-9_.-]`` with alphanumeric ends."""
    prefix, slash, name = key.rpartition("/")
    if slash:
        if not prefix:
            return f"key {key!r} has an empty prefix before '/'"
        problem = dns1123_subdomain_problem(prefix)
        if problem is not None:
            return f"key {key!r}: prefix {problem}"
    if not 1 <= len(name) <= MAX_LABEL_VALUE_LEN or _NAME_PART.fullmatch(name) is None:
        return (
            f"key {key!r}: the name part must be 1-63 of letters, digits, '-', '_' and '.', "
            "starting and ending with a letter or digit"
        )
    return None


def label_value(text: str) -> str:
    """``text`` as a valid label value: itself when already valid, else its label-safe
    characters (accents dropped, at most 54) followed by ``-`` and 8 hex digits of its SHA-256, so distinct texts
    keep distinct values."""
    if label_value_problem(text) is None:
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_LEN]
    ascii_form = "".join(
        ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch)
    )
    head = _trim(_NOT_LABEL_CHAR.sub("-", ascii_form))[: MAX_LABEL_VALUE_LEN - _HASH_LEN - 1]
    head = _trim(head)
    return f"{head}-{digest}" if head else digest


def name_part(text: str) -> str:
    """``text`` as the name part of a label or annotation key (see :func:`label_value`);
    never empty."""
    value = label_value(text)
    return value or "empty"


def _trim(text: str) -> str:
    """Drop ``-``, ``_`` and ``.`` from both ends (the text holds label characters only)."""
    return text.strip("-_.")
