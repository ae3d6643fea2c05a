"""The terraform engine: the real ``terraform`` (or ``tofu``) CLI, in Terratest's shape.

- :mod:`.options`: one options value per run (binary, variables, environment, lock timeout,
  the table of retryable errors);
- :mod:`.cmd`: the one gateway that starts the binary (always non-interactive, output lines to
  the progress sink, retries only what the table names, errors mapped to branchenv's tree);
- :mod:`.cliconfig`: the CLI configuration the engine writes for its own subprocesses
  (filesystem mirror, no direct installs, a shared plugin cache);
- :mod:`.workdir`: the per-stack work dir under ``.branchenv/`` built from the user's module
  (which is never modified);
- :mod:`.hcl`: what the module declares (variables, aws provider blocks), read with python-hcl2;
- :mod:`.override`: the override file (local-cloud endpoints, credentials, default tags);
- :mod:`.backend`: where each stack's state lives (S3 on the local cloud, S3 on AWS, or a local
  file backend for one person) and the metadata sidecar beside it.
"""
