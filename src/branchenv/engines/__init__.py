"""Engines run a Pulumi program for one stack against a target.

See :mod:`branchenv.engines.base` for the protocol and :func:`get_engine` for the factory.
"""

from branchenv.engines.base import ENGINE_NAMES, Engine, get_engine

__all__ = ["ENGINE_NAMES", "Engine", "get_engine"]
