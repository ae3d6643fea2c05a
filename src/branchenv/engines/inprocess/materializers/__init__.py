"""Every resource type the inprocess engine can create, registered by type token.

Importing this package registers all entries (see :mod:`.base` for the registry itself).
"""

from branchenv.engines.inprocess.materializers import compute, data  # noqa: F401 - registers
from branchenv.engines.inprocess.materializers.base import (
    REGISTRY,
    Applied,
    Context,
    Materializer,
)

__all__ = ["REGISTRY", "Applied", "Context", "Materializer"]
