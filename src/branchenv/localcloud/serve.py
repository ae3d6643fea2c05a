"""The local cloud process: ``python -m branchenv.localcloud.serve --state-dir DIR``.

Runs, in one process, a moto server and the local function runner, each on 127.0.0.1 with a
free port, then writes ``server.json`` (ports, pid) atomically so the parent can find them.
For its whole life it holds an exclusive lock on ``server.alive`` (holding its pid), so a
second server for the same state dir refuses to start and the parent can always find this one.
SIGTERM/SIGINT stop both servers and every function worker. Nothing binds beyond loopback.
"""

from __future__ import annotations

import argparse
import datetime as dt
import fcntl
import json
import os
import signal
import sys
import threading
from pathlib import Path

from branchenv.localcloud import fidelity

LOOPBACK = "127.0.0.1"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="branchenv.localcloud.serve")
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    state_dir: Path = args.state_dir

    # Held (never closed) until the process exits; the kernel releases it even on SIGKILL.
    alive = os.open(state_dir / "server.alive", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(alive, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        print(f"local cloud: another server already holds {state_dir}; not starting", flush=True)
        return 3
    os.ftruncate(alive, 0)
    os.write(alive, str(os.getpid()).encode())

    from moto.moto_server.threaded_moto_server import ThreadedMotoServer

    fidelity.apply()  # before the first request: answers a real provider depends on

    # Handlers first: a `stop` that lands while the servers start still shuts them down.
    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        print(f"local cloud: signal {signum}, stopping", flush=True)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    from branchenv.localcloud.functions import FunctionRunner

    moto_server = ThreadedMotoServer(ip_address=LOOPBACK, port=args.port, verbose=False)
    moto_server.start()
    _, moto_port = moto_server.get_host_and_port()
    endpoint_url = f"http://{LOOPBACK}:{moto_port}"

    runner = FunctionRunner(
        endpoint_url=endpoint_url, work_dir=state_dir / "functions", host=LOOPBACK, port=0
    )
    runner.start()
    fidelity.on_function_deleted(runner.retire_deleted_functions)

    info = {
        "pid": os.getpid(),
        "port": moto_port,
        "functions_port": runner.port,
        "endpoint_url": endpoint_url,
        "functions_url": runner.url,
        "started_at": dt.datetime.now(dt.UTC).isoformat(),
        fidelity.ATOMIC_CONDITIONAL_WRITES: True,
    }
    tmp = state_dir / "server.json.tmp"
    tmp.write_text(json.dumps(info))
    tmp.replace(state_dir / "server.json")
    print(f"local cloud: moto on {endpoint_url}, functions on {runner.url}", flush=True)

    stop.wait()
    runner.stop()
    moto_server.stop()
    print("local cloud: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
