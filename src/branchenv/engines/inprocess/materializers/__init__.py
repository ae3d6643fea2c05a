"""Every resource type the inprocess engine can create, registered by type token.

Importing this package registers all entries (see :mod:`.base` for the registry itself).
"""

from branchenv.engines.inprocess.materializers import (  # noqa: F401 - importing registers
    compute,
    data,
    messaging,
    monitoring,
    network,
    secrets,
)
from branchenv.engines.inprocess.materializers.base import (
    REGISTRY,
    AlreadyExists,
    Applied,
    Context,
    Materializer,
    Prior,
)

__all__ = ["REGISTRY", "AlreadyExists", "Applied", "Context", "Materializer", "Prior"]
