"""Fault injection: a real TCP proxy between a service and one of its dependencies.

:class:`FaultProxy` listens on 127.0.0.1 and forwards every connection to an upstream address
(a thread per direction). Its mode can change at any time, for new and open connections alike:

- ``PASS``: forward bytes unchanged;
- ``LATENCY``: hold each chunk the client sends for ``latency_s`` before forwarding it;
- ``RESET``: reset the connection (TCP RST) as soon as the client sends anything;
- ``DOWN``: the dependency is gone: the listening socket is closed (connections are refused)
  and open connections are reset; leaving ``DOWN`` listens on the same port again.

It counts what it did (:class:`ProxyStats`): connections accepted and forwarded, bytes each
way, resets and delayed chunks. A test that asserts on those counts proves the traffic really
went through the proxy, so a fault test cannot pass by accident when the proxy is bypassed.

:func:`proxied_dependency` puts a proxy in front of one dependency of a Lambda function on the
local cloud: it adds ``AWS_ENDPOINT_URL_<SERVICE>`` (which botocore honours per service) to the
function's environment, pointing at the proxy, and restores the original environment on exit.
The local function runner restarts warm workers when a function's configuration changes, so
the next request already goes through the proxy. The pytest plugin exposes this as the
``branchenv_fault_proxy`` fixture.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import select
import socket
import struct
import threading
import urllib.parse
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from branchenv.errors import UsageError

if TYPE_CHECKING:
    from branchenv.targets import Target

_CHUNK = 65536


class FaultMode(enum.Enum):
    PASS = "pass"
    LATENCY = "latency"
    RESET = "reset"
    DOWN = "down"


@dataclasses.dataclass(frozen=True)
class ProxyStats:
    """What a proxy has done since it started (or since :meth:`FaultProxy.reset_stats`)."""

    accepted: int = 0
    forwarded: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    resets: int = 0
    delayed: int = 0


def _rst_close(sock: socket.socket) -> None:
    """Close ``sock`` with a TCP reset instead of a graceful FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


def _close_listener(sock: socket.socket) -> None:
    """Stop listening now: shutdown first, since the accept thread may hold the socket in
    select() and a plain close() would keep it listening (then resetting) until that returns."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


class _Conn:
    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self._lock = threading.Lock()
        self._done = 0
        self.is_cut = False

    def half_done(self) -> bool:
        with self._lock:
            self._done += 1
            return self._done == 2

    def cut(self) -> None:
        """Reset the client side and wake both pumps. The client's socket is only shut for
        reading (which wakes its pump, and sends nothing): shutting it for writing would send
        a FIN, so the client would see a clean close before the reset."""
        self.is_cut = True  # first: the other pump, woken below, must not FIN the client
        with contextlib.suppress(OSError):
            self.upstream.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.client.shutdown(socket.SHUT_RD)
        _rst_close(self.client)
        with contextlib.suppress(OSError):
            self.upstream.close()


class FaultProxy:
    """A TCP proxy on loopback with switchable faults. Use as a context manager or call
    :meth:`start` / :meth:`stop`."""

    def __init__(self, upstream: tuple[str, int], *, host: str = "127.0.0.1", port: int = 0):
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the fault proxy only listens on loopback")
        self.upstream = upstream
        self.host = host
        self._lock = threading.Lock()
        self._stats: dict[str, int] = {f.name: 0 for f in dataclasses.fields(ProxyStats)}
        self._mode = FaultMode.PASS
        self._latency_s = 0.0
        self._conns: set[_Conn] = set()
        self._stopping = threading.Event()
        self._listener: socket.socket | None = self._listen(port)
        self.port: int = self._listener.getsockname()[1]
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def _listen(self, port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET6 if self.host == "::1" else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, port))
        except OSError as exc:
            sock.close()
            raise OSError(
                exc.errno, f"fault proxy cannot listen on {self.host}:{port}: {exc.strerror}"
            ) from exc
        sock.listen(64)
        return sock

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``: what to give a client as the dependency's endpoint."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> FaultProxy:
        self._thread = threading.Thread(target=self._serve, name="fault-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            listener, self._listener = self._listener, None
            conns = list(self._conns)
        if listener is not None:
            _close_listener(listener)
        for conn in conns:
            conn.cut()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- modes --------------------------------------------------------------------------------

    @property
    def mode(self) -> FaultMode:
        return self._mode

    def set_mode(self, mode: FaultMode, *, latency_s: float = 0.0) -> None:
        """Switch the fault; applies to new connections and to the next chunk of open ones."""
        if mode is FaultMode.LATENCY and latency_s <= 0:
            raise ValueError("LATENCY needs latency_s > 0")
        with self._lock:
            previous = self._mode
            self._mode, self._latency_s = mode, latency_s
            conns = list(self._conns) if mode is FaultMode.DOWN else []
            listener = self._listener
            if mode is FaultMode.DOWN:
                self._listener = None
            elif previous is FaultMode.DOWN and listener is None and not self._stopping.is_set():
                self._listener = self._listen(self.port)
        if mode is FaultMode.DOWN:
            if listener is not None:
                _close_listener(listener)
            for conn in conns:
                self._add("resets")
                conn.cut()

    @contextlib.contextmanager
    def fault(self, mode: FaultMode, *, latency_s: float = 0.0) -> Iterator[FaultProxy]:
        """Apply ``mode`` inside the block, back to ``PASS`` after it."""
        self.set_mode(mode, latency_s=latency_s)
        try:
            yield self
        finally:
            self.set_mode(FaultMode.PASS)

    def stats(self) -> ProxyStats:
        with self._lock:
            return ProxyStats(**self._stats)

    def reset_stats(self) -> None:
        with self._lock:
            self._stats = dict.fromkeys(self._stats, 0)

    def _add(self, key: str, amount: int = 1) -> None:
        with self._lock:
            self._stats[key] += amount

    # -- forwarding ---------------------------------------------------------------------------

    def _serve(self) -> None:
        while not self._stopping.is_set():
            listener = self._listener
            if listener is None:
                self._stopping.wait(0.02)
                continue
            try:
                readable, _, _ = select.select([listener], [], [], 0.1)
                if not readable:
                    continue
                client, _addr = listener.accept()
            except (OSError, ValueError):  # closed by set_mode(DOWN) or stop()
                continue
            self._add("accepted")
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, client: socket.socket) -> None:
        if self._mode is FaultMode.RESET:
            client.settimeout(5)
            with contextlib.suppress(OSError):
                client.recv(_CHUNK)
            self._add("resets")  # counted first: the client may look as soon as it is reset
            _rst_close(client)
            return
        try:
            upstream = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            _rst_close(client)
            return
        upstream.settimeout(None)
        # Forward each chunk as it comes: Nagle's algorithm would add its own latency on top of
        # the one being injected.
        for sock in (client, upstream):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._add("forwarded")
        conn = _Conn(client, upstream)
        with self._lock:
            self._conns.add(conn)
        threading.Thread(target=self._pump, args=(conn, True), daemon=True).start()
        self._pump(conn, False)

    def _pump(self, conn: _Conn, up: bool) -> None:
        src, dst = (conn.client, conn.upstream) if up else (conn.upstream, conn.client)
        try:
            while True:
                data = src.recv(_CHUNK)
                if not data:
                    break
                mode, latency = self._mode, self._latency_s
                if mode in (FaultMode.RESET, FaultMode.DOWN):
                    self._add("resets")
                    conn.cut()
                    return
                if mode is FaultMode.LATENCY and up:
                    self._add("delayed")
                    if self._stopping.wait(latency):
                        return
                # counted before sending: whoever sees the bytes arrive sees them counted
                self._add("bytes_up" if up else "bytes_down", len(data))
                dst.sendall(data)
        except OSError:
            pass
        finally:
            if not conn.is_cut:
                with contextlib.suppress(OSError):
                    dst.shutdown(socket.SHUT_WR)
            if conn.half_done():
                if conn.is_cut:
                    _rst_close(conn.client)  # whoever closes a cut connection resets it
                for sock in (conn.client, conn.upstream):
                    with contextlib.suppress(OSError):
                        sock.close()
                with self._lock:
                    self._conns.discard(conn)


# --- a proxy in front of one dependency of a function on the local cloud ------------------------


def dependency_env_var(dependency: str) -> str:
    """The botocore variable that sets one service's endpoint: ``AWS_ENDPOINT_URL_DYNAMODB``."""
    cleaned = dependency.strip().upper().replace("-", "_").replace(" ", "_")
    if not cleaned or not cleaned.replace("_", "").isalnum():
        raise UsageError(f"dependency {dependency!r} is not a boto3 service name such as dynamodb")
    return f"AWS_ENDPOINT_URL_{cleaned}"


def _upstream_of(target: Target) -> tuple[str, int]:
    if not target.is_local or not target.endpoint_url:
        raise UsageError(
            f"fault injection through a local proxy needs the local target, not {target.name!r}: "
            "a function in a real account cannot reach a proxy on this machine "
            "(run the suite with `--target local`)"
        )
    parsed = urllib.parse.urlsplit(target.endpoint_url)
    if parsed.hostname is None or parsed.port is None:
        raise UsageError(f"local cloud endpoint {target.endpoint_url!r} has no host:port")
    return parsed.hostname, parsed.port


def _set_environment(lambda_client: Any, function_name: str, variables: dict[str, str]) -> None:
    lambda_client.update_function_configuration(
        FunctionName=function_name, Environment={"Variables": variables}
    )


@contextlib.contextmanager
def proxied_dependency(
    target: Target, *, function_name: str, dependency: str = "dynamodb"
) -> Iterator[FaultProxy]:
    """Route ``function_name``'s calls to ``dependency`` through a new :class:`FaultProxy`
    (in ``PASS`` mode) for the duration of the block; the function's environment is restored
    and the proxy stopped afterwards, whatever happens inside."""
    var = dependency_env_var(dependency)
    upstream = _upstream_of(target)
    lam = target.client("lambda")
    config = lam.get_function_configuration(FunctionName=function_name)
    original = dict((config.get("Environment") or {}).get("Variables") or {})
    proxy = FaultProxy(upstream).start()
    try:
        _set_environment(lam, function_name, {**original, var: proxy.url})
        try:
            yield proxy
        finally:
            _set_environment(lam, function_name, original)
    finally:
        proxy.stop()
