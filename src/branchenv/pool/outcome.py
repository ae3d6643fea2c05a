"""What a release did about its pool's replacement stack: a leaf module, so the outcome
types of :mod:`branchenv.provision` can name it without importing the refill machinery
(which imports provision itself).
"""

from __future__ import annotations

import dataclasses

__all__ = ["Refill"]


@dataclasses.dataclass(frozen=True)
class Refill:
    """What a release did about the pool's replacement stack.

    ``status``: ``started`` (this release started the refill: ``pid``), ``running`` (one was
    running already, ``pid`` when known: it fills to size anyway), ``off`` (``pool_refill =
    "off"``: the next ``pool fill`` replaces it), ``skipped`` (``pool_size`` is 0 for the
    target: no size to refill to) or ``failed`` (the process did not start: ``reason``)."""

    status: str
    pool: str
    pid: int | None = None
    log: str | None = None
    reason: str | None = None

    def describe(self) -> str:
        """One line for a person."""
        if self.status == "started":
            return f"background refill of pool {self.pool} started (pid {self.pid}, log {self.log})"
        if self.status == "running":
            who = f"pid {self.pid}" if self.pid is not None else "pid unknown"
            return (
                f"a background refill of pool {self.pool} is running already ({who}, log "
                f"{self.log}): it fills the pool to size"
            )
        if self.status == "failed":
            return (
                f"the background refill of pool {self.pool} did not start ({self.reason}); run "
                "`branchenv pool fill`"
            )
        return f"no background refill of pool {self.pool} ({self.reason})"
