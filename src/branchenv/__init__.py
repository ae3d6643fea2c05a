"""branchenv: every git branch its own short-lived, production-like cloud stack."""

__version__ = "0.1.0"
