"""A warm function worker: ``python -m branchenv.localcloud.worker CODE_DIR HANDLER``.

The local stand-in for one Lambda execution environment. It imports the handler once, then reads
one JSON request per line on stdin (``{"event": ..., "context": {...}}``) and answers one JSON line
on the original stdout. The handler's own prints go to stderr (the runner's log), so they cannot
corrupt the protocol. Its environment is the function's, as configured in the local cloud.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from typing import Any


class _Context:
    """The parts of the Lambda context object handlers commonly read."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.function_name: str = data.get("function_name", "")
        self.function_version = "$LATEST"
        self.invoked_function_arn: str = data.get("invoked_function_arn", "")
        self.memory_limit_in_mb: int = int(data.get("memory_limit_in_mb", 128))
        self.aws_request_id: str = data.get("aws_request_id", "")
        self.log_group_name: str = data.get("log_group_name", "")
        self.log_stream_name: str = data.get("log_stream_name", "")
        self._deadline = time.monotonic() + float(data.get("timeout_s", 3))

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def main() -> int:
    code_dir, handler_spec = sys.argv[1], sys.argv[2]
    proto = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout = sys.stderr
    sys.path.insert(0, code_dir)
    module_name, _, func_name = handler_spec.rpartition(".")
    try:
        handler = getattr(importlib.import_module(module_name), func_name)
    except Exception as exc:  # an import error is reported on every request, as Lambda does
        init_error = f"Runtime.ImportModuleError: {type(exc).__name__}: {exc}"
        handler = None
    else:
        init_error = ""
    proto.write(json.dumps({"ready": True, "init_error": init_error}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        if handler is None:
            proto.write(json.dumps({"ok": False, "error": init_error}) + "\n")
            continue
        try:
            result = handler(request["event"], _Context(request.get("context", {})))
            proto.write(json.dumps({"ok": True, "result": result}, default=str) + "\n")
        except Exception as exc:
            traceback.print_exc()
            proto.write(json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
