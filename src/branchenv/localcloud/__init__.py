"""The local cloud: a moto server on loopback plus the local function runner.

:class:`~branchenv.localcloud.server.LocalCloud` starts, stops and reports on it as a background
process that outlives the command; its pid, ports and log live under ``.branchenv/localcloud/``.
"""

from branchenv.localcloud.server import CloudStatus, LocalCloud

__all__ = ["CloudStatus", "LocalCloud"]
