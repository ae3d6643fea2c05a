"""The local function runner: Lambda-backed HTTP endpoints served on loopback.

moto stores Lambda functions but cannot invoke them without Docker, which these machines lack.
This runner, living in the local cloud's process, serves:

- ``/api/<api-id>/<path>``: an API Gateway v2 HTTP API. The route is matched as API Gateway does
  (exact route keys, ``{param}`` and ``{proxy+}`` segments, ``ANY``, ``$default``), its
  integration resolved to a Lambda function, and the handler called with the real payload
  format 2.0 event;
- ``/fn/<function-name>/<path>``: a function URL (payload 2.0, route key ``$default``);
- ``/_health``: the runner itself.

Handlers run in warm worker subprocesses (:mod:`branchenv.localcloud.worker`), one pool per
function and code version, with the function's configured environment plus the local cloud's
endpoint and dummy credentials, exactly as a Lambda execution environment would see them.
Whichever engine created the function (inprocess or the real pulumi CLI) does not matter: the
runner reads the local cloud's own records.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
import zipfile
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from branchenv.targets import LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY

_FUNCTION_IN_URI = re.compile(r"function:([A-Za-z0-9_-]+)")
_MAX_WORKERS_PER_FUNCTION = 4


class RunnerError(Exception):
    """A request the runner cannot serve; carries the HTTP status API Gateway would return."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class FunctionSpec:
    """What the runner needs of a Lambda function stored in the local cloud."""

    name: str
    arn: str
    account_id: str
    region: str
    handler: str
    environment: dict[str, str]
    timeout_s: float
    memory_mb: int
    code_sha: str
    code: bytes


# --- the one place that reads moto's records (same process: the local cloud) -----------------


def _iter_backends(backend_dict: Any) -> Any:
    for account_id in list(backend_dict.keys()):
        account = backend_dict[account_id]
        for region in list(account.keys()):
            yield account_id, region, account[region]


def lookup_function(name: str) -> FunctionSpec:
    """Find function ``name`` in any account/region of the local cloud."""
    from moto.awslambda.models import lambda_backends

    for account_id, region, backend in _iter_backends(lambda_backends):
        try:
            fn = backend.get_function(name)
        except Exception:
            continue
        code: bytes = getattr(fn, "code_bytes", b"") or b""
        return FunctionSpec(
            name=fn.function_name,
            arn=fn.function_arn,
            account_id=account_id,
            region=region,
            handler=fn.handler or "index.handler",
            environment={str(k): str(v) for k, v in (fn.environment_vars or {}).items()},
            timeout_s=float(fn.timeout or 3),
            memory_mb=int(fn.memory_size or 128),
            code_sha=hashlib.sha256(code).hexdigest(),
            code=code,
        )
    raise RunnerError(404, f"no Lambda function named {name!r} in the local cloud")


def lookup_api_routes(api_id: str) -> list[tuple[str, str]]:
    """``[(route_key, function_name)]`` for HTTP API ``api_id``, via its integrations."""
    from moto.apigatewayv2.models import apigatewayv2_backends

    for _account, _region, backend in _iter_backends(apigatewayv2_backends):
        api = backend.apis.get(api_id)
        if api is None:
            continue
        routes: list[tuple[str, str]] = []
        for route in api.routes.values():
            target = route.target or ""
            integration_id = target.split("/", 1)[1] if target.startswith("integrations/") else ""
            integration = api.integrations.get(integration_id)
            if integration is None:
                continue
            match = _FUNCTION_IN_URI.search(integration.integration_uri or "")
            if match:
                routes.append((route.route_key, match.group(1)))
        return routes
    raise RunnerError(404, f"no HTTP API with id {api_id!r} in the local cloud")


# --- route matching (pure) --------------------------------------------------------------------


def match_route(
    routes: list[tuple[str, str]], method: str, path: str
) -> tuple[str, str, dict[str, str]] | None:
    """Pick the route API Gateway would pick: exact path beats parameters beats greedy
    beats ``$default``; a method match beats ``ANY``. Returns (route key, function, params)."""
    best: tuple[tuple[int, int, int], str, str, dict[str, str]] | None = None
    segs = [s for s in path.split("/") if s]
    for route_key, function in routes:
        if route_key == "$default":
            rank = (0, 0, 0)
            if best is None or rank > best[0]:
                best = (rank, route_key, function, {})
            continue
        r_method, _, r_path = route_key.partition(" ")
        if r_method not in (method, "ANY"):
            continue
        params = _match_path(r_path, segs)
        if params is None:
            continue
        literal = sum(1 for s in r_path.split("/") if s and not s.startswith("{"))
        greedy = 0 if r_path.endswith("+}") else 1
        rank = (1 + greedy, literal, 1 if r_method == method else 0)
        if best is None or rank > best[0]:
            best = (rank, route_key, function, params)
    return None if best is None else (best[1], best[2], best[3])


def _match_path(pattern: str, segs: list[str]) -> dict[str, str] | None:
    psegs = [s for s in pattern.split("/") if s]
    params: dict[str, str] = {}
    for i, p in enumerate(psegs):
        if p.startswith("{") and p.endswith("+}"):
            if i >= len(segs):
                return None
            params[p[1:-2]] = "/".join(segs[i:])
            return params
        if i >= len(segs):
            return None
        if p.startswith("{") and p.endswith("}"):
            params[p[1:-1]] = urllib.parse.unquote(segs[i])
        elif p != segs[i]:
            return None
    return params if len(psegs) == len(segs) else None


def build_event(
    *,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: dict[str, str],
    body: bytes,
    route_key: str,
    path_params: dict[str, str],
    api_id: str,
    account_id: str,
    domain: str,
    source_ip: str,
) -> dict[str, Any]:
    """The API Gateway v2 / function URL payload format 2.0 event."""
    now = dt.datetime.now(dt.UTC)
    lower = {k.lower(): v for k, v in headers.items()}
    cookies = [c.strip() for c in lower.pop("cookie", "").split(";") if c.strip()]
    text_types = ("json", "text", "xml", "x-www-form-urlencoded", "javascript")
    content_type = lower.get("content-type", "")
    is_b64 = bool(body) and not any(t in content_type for t in text_types) and bool(content_type)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": lower,
        "requestContext": {
            "accountId": account_id,
            "apiId": api_id,
            "domainName": domain,
            "domainPrefix": domain.split(".")[0],
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": lower.get("user-agent", ""),
            },
            "requestId": uuid.uuid4().hex,
            "routeKey": route_key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": is_b64,
    }
    if cookies:
        event["cookies"] = cookies
    if raw_query:
        qs = urllib.parse.parse_qs(raw_query, keep_blank_values=True)
        event["queryStringParameters"] = {k: ",".join(v) for k, v in qs.items()}
    if path_params:
        event["pathParameters"] = path_params
    if body:
        event["body"] = base64.b64encode(body).decode() if is_b64 else body.decode("utf-8")
    return event


def to_http_response(result: Any) -> tuple[int, dict[str, str], bytes]:
    """Turn a handler's return value into an HTTP response, per payload format 2.0 rules."""
    if isinstance(result, dict) and "statusCode" in result:
        headers = {str(k): str(v) for k, v in (result.get("headers") or {}).items()}
        raw = result.get("body") or ""
        body = base64.b64decode(raw) if result.get("isBase64Encoded") else str(raw).encode()
        return int(result["statusCode"]), headers, body
    # Payload 2.0: anything else is a 200 JSON response of the value itself.
    return 200, {"content-type": "application/json"}, json.dumps(result).encode()


# --- workers ------------------------------------------------------------------------------


class _Worker:
    def __init__(self, spec: FunctionSpec, code_dir: Path, endpoint_url: str) -> None:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            "AWS_REGION": spec.region,
            "AWS_DEFAULT_REGION": spec.region,
            "AWS_ACCESS_KEY_ID": LOCAL_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": LOCAL_SECRET_KEY,
            "AWS_ENDPOINT_URL": endpoint_url,
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
            "LAMBDA_TASK_ROOT": str(code_dir),
        }
        env.update(spec.environment)
        self.spec = spec
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "branchenv.localcloud.worker", str(code_dir), spec.handler],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,  # inherit: the local cloud's log
            env=env,
            text=True,
            bufsize=1,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        ready = self._read(timeout=30)
        if ready is None:
            self.kill()
            raise RunnerError(502, f"function {spec.name!r} failed to start its runtime")

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _read(self, timeout: float) -> dict[str, Any] | None:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            return None
        return None if line is None else dict(json.loads(line))

    def invoke(self, event: dict[str, Any], request_id: str) -> dict[str, Any] | None:
        """Send one event; None when the function timed out or its runtime died."""
        assert self.proc.stdin is not None
        context = {
            "function_name": self.spec.name,
            "invoked_function_arn": self.spec.arn,
            "memory_limit_in_mb": self.spec.memory_mb,
            "aws_request_id": request_id,
            "log_group_name": f"/aws/lambda/{self.spec.name}",
            "timeout_s": self.spec.timeout_s,
        }
        try:
            self.proc.stdin.write(json.dumps({"event": event, "context": context}) + "\n")
            self.proc.stdin.flush()
        except OSError:
            return None
        return self._read(timeout=self.spec.timeout_s + 1.0)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=5)


class _Pool:
    """Warm workers of one function version (at most a few, like reserved environments)."""

    def __init__(self, spec: FunctionSpec, code_dir: Path, endpoint_url: str) -> None:
        self.spec = spec
        self._code_dir = code_dir
        self._endpoint_url = endpoint_url
        self._idle: queue.LifoQueue[_Worker] = queue.LifoQueue()
        self._count = 0
        self._lock = threading.Lock()
        self._all: list[_Worker] = []

    def acquire(self) -> _Worker:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            spawn = self._count < _MAX_WORKERS_PER_FUNCTION
            if spawn:
                self._count += 1
        if spawn:
            try:
                worker = _Worker(self.spec, self._code_dir, self._endpoint_url)
            except Exception:
                with self._lock:
                    self._count -= 1
                raise
            with self._lock:
                self._all.append(worker)
            return worker
        return self._idle.get(timeout=self.spec.timeout_s + 5)

    def release(self, worker: _Worker) -> None:
        if worker.alive():
            self._idle.put(worker)
        else:
            self.discard(worker)

    def discard(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            self._count -= 1
            if worker in self._all:
                self._all.remove(worker)

    def close(self) -> None:
        with self._lock:
            workers = list(self._all)
            self._all.clear()
        for w in workers:
            w.kill()


class FunctionRunner:
    """Serves Lambda-backed HTTP endpoints of the local cloud on loopback."""

    def __init__(self, *, endpoint_url: str, work_dir: Path, host: str, port: int = 0) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the function runner only binds to loopback")
        self.endpoint_url = endpoint_url
        self.work_dir = work_dir
        self._pools: dict[tuple[str, str], _Pool] = {}
        self._pools_lock = threading.Lock()
        runner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out as separate writes; with Nagle's algorithm on, a
            # keep-alive client's delayed ACK would stall every response by ~40 ms.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                sys.stderr.write("functions: " + (format % args) + "\n")

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                status, headers, payload = runner.handle(
                    self.command,
                    self.path,
                    dict(self.headers.items()),
                    body,
                    self.client_address[0],
                )
                self.send_response(status)
                for k, v in headers.items():
                    if k.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(k, v)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = self._server.server_address[0]
        return f"http://{host if isinstance(host, str) else host.decode()}:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        with self._pools_lock:
            pools = list(self._pools.values())
            self._pools.clear()
        for pool in pools:
            pool.close()

    # -- request handling ------------------------------------------------------------------

    def handle(
        self, method: str, target: str, headers: dict[str, str], body: bytes, source_ip: str
    ) -> tuple[int, dict[str, str], bytes]:
        parsed = urllib.parse.urlsplit(target)
        parts = parsed.path.split("/", 3)  # "", kind, id, rest
        try:
            if parsed.path == "/_health":
                return _json(200, {"status": "ok"})
            if len(parts) < 3 or parts[1] not in ("api", "fn") or not parts[2]:
                raise RunnerError(404, "use /api/<api-id>/<path> or /fn/<function>/<path>")
            kind, ident = parts[1], parts[2]
            raw_path = "/" + (parts[3] if len(parts) > 3 else "")
            if kind == "api":
                match = match_route(lookup_api_routes(ident), method, raw_path)
                if match is None:
                    return _json(404, {"message": "Not Found"})
                route_key, function_name, params = match
            else:
                route_key, function_name, params = "$default", ident, {}
            spec = lookup_function(function_name)
            event = build_event(
                method=method,
                raw_path=raw_path,
                raw_query=parsed.query,
                headers=headers,
                body=body,
                route_key=route_key,
                path_params=params,
                api_id=ident if kind == "api" else "",
                account_id=spec.account_id,
                domain=headers.get("Host", "127.0.0.1"),
                source_ip=source_ip,
            )
            return self.invoke(spec, event)
        except RunnerError as exc:
            return _json(exc.status, {"message": str(exc)})

    def invoke(
        self, spec: FunctionSpec, event: dict[str, Any]
    ) -> tuple[int, dict[str, str], bytes]:
        pool = self._pool(spec)
        try:
            worker = pool.acquire()
        except queue.Empty:
            # Every worker of this function is busy past its timeout: throttled, as Lambda would.
            return _json(429, {"message": "Too Many Requests"})
        request_id = uuid.uuid4().hex
        started = time.monotonic()
        try:
            reply = worker.invoke(event, request_id)
        except (ValueError, OSError) as exc:  # a garbled reply or a broken pipe: runtime is gone
            sys.stderr.write(f"functions: {spec.name} runtime failed: {exc}\n")
            reply = None
        elapsed_ms = (time.monotonic() - started) * 1000
        if reply is None:
            pool.discard(worker)
            sys.stderr.write(
                f"functions: {spec.name} timed out or died after {elapsed_ms:.0f} ms\n"
            )
            return _json(503, {"message": "Service Unavailable"})
        pool.release(worker)
        if not reply.get("ok"):
            sys.stderr.write(f"functions: {spec.name} failed: {reply.get('error')}\n")
            return _json(500, {"message": "Internal Server Error"})
        return to_http_response(reply.get("result"))

    def _pool(self, spec: FunctionSpec) -> _Pool:
        key = (spec.name, spec.code_sha)
        with self._pools_lock:
            pool = self._pools.get(key)
            if pool is None:
                for old_key in [k for k in self._pools if k[0] == spec.name]:
                    self._pools.pop(old_key).close()  # code or config changed: retire old
                code_dir = self._code_dir(spec.name, spec.code_sha)
                if not code_dir.exists():
                    code_dir.mkdir(parents=True)
                    with zipfile.ZipFile(io.BytesIO(spec.code)) as zf:
                        zf.extractall(code_dir)
                pool = _Pool(spec, code_dir, self.endpoint_url)
                self._pools[key] = pool
                self._retire_deleted_functions()
        # A change of environment or settings must also retire warm workers.
        if pool.spec != spec:
            with self._pools_lock:
                self._pools.pop(key, None)
            pool.close()
            return self._pool_fresh(spec)
        return pool

    def retire_deleted_functions(self) -> None:
        """Stop the warm workers of every function no longer in the local cloud and remove its
        unpacked code; the local cloud calls it after each DeleteFunction
        (:func:`branchenv.localcloud.fidelity.on_function_deleted`)."""
        with self._pools_lock:
            self._retire_deleted_functions()

    def _retire_deleted_functions(self) -> None:
        """Close the warm workers of functions no longer in the local cloud (their stack was
        destroyed) and remove their code dirs, so a long-lived local cloud accumulates neither
        idle runtimes nor unpacked packages. Called with the pools lock held."""
        for key in list(self._pools):
            try:
                lookup_function(key[0])
            except RunnerError:
                self._pools.pop(key).close()
                shutil.rmtree(self._code_dir(key[0], key[1]), ignore_errors=True)

    def _code_dir(self, name: str, code_sha: str) -> Path:
        return self.work_dir / f"{name}-{code_sha[:12]}"

    def _pool_fresh(self, spec: FunctionSpec) -> _Pool:
        code_dir = self._code_dir(spec.name, spec.code_sha)
        pool = _Pool(spec, code_dir, self.endpoint_url)
        with self._pools_lock:
            self._pools[(spec.name, spec.code_sha)] = pool
        return pool


def _json(status: int, value: Any) -> tuple[int, dict[str, str], bytes]:
    return status, {"content-type": "application/json"}, json.dumps(value).encode()
