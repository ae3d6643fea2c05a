"""Contract checks: a response (or any JSON value) against a JSON schema.

``check_contract`` lists every violation instead of stopping at the first, so one failed test
says all that is wrong with a response. The schema itself is checked first: a broken schema is
the test's bug and is reported as such.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class ContractViolation(AssertionError):
    """A value that does not match its schema; ``problems`` lists each violation."""

    def __init__(self, what: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{what} violates its contract:\n  - " + "\n  - ".join(problems))


def violations(instance: Any, schema: Mapping[str, Any]) -> list[str]:
    """Every way ``instance`` breaks ``schema`` (empty when it conforms), path first."""
    from jsonschema import validators  # type: ignore[import-untyped]

    cls = validators.validator_for(schema)
    cls.check_schema(schema)
    validator = cls(schema)
    found = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    out = []
    for err in found:
        path = "/".join(str(p) for p in err.absolute_path) or "(root)"
        out.append(f"{path}: {err.message}")
    return out


def check_contract(
    response: Any,
    schema: Mapping[str, Any],
    *,
    status: int | None = None,
    content_type: str | None = "application/json",
) -> Any:
    """Check an HTTP response (``requests.Response``) or a plain JSON value against ``schema``.

    For a response, also checks ``status`` and the content type when given, and returns the
    parsed body. Raises :class:`ContractViolation` listing every problem.
    """
    problems: list[str] = []
    what = "value"
    body: Any = response
    if hasattr(response, "status_code") and hasattr(response, "json"):
        what = f"{response.request.method} {response.url} -> {response.status_code}"
        if status is not None and response.status_code != status:
            problems.append(f"status: expected {status}, got {response.status_code}")
        if content_type is not None:
            got = response.headers.get("content-type", "")
            if content_type not in got:
                problems.append(f"content-type: expected {content_type}, got {got or 'none'}")
        try:
            body = response.json()
        except ValueError:
            raise ContractViolation(
                what, [*problems, f"body is not JSON: {response.text[:200]!r}"]
            ) from None
    problems.extend(violations(body, schema))
    if problems:
        raise ContractViolation(what, problems)
    return body
