"""branchenv's pytest plugin (registered through the ``pytest11`` entry point).

Placeholder until the harness lands: it registers nothing, so it is inert in every pytest run.
"""
