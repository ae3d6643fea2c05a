"""The ``pulumi`` engine: the real Pulumi engine through ``pulumi.automation``.

:mod:`.engine` is the Engine; :mod:`.backend` reads and locks DIY backends; :mod:`.settings`
owns the stack settings files; :mod:`.plan` finds planned physical names; :mod:`.helpers` are
the pure pieces.
"""

from branchenv.engines.pulumi.engine import PulumiEngine

__all__ = ["PulumiEngine"]
