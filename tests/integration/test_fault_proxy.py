"""The fault proxy on real sockets: it forwards and counts, delays, resets, refuses, recovers."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest

from branchenv.harness.faults import FaultMode, FaultProxy, dependency_env_var


class Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(4096):
            self.request.sendall(data.upper())


@pytest.fixture
def upstream() -> Iterator[tuple[str, int]]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield ("127.0.0.1", server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def proxy(upstream: tuple[str, int]) -> Iterator[FaultProxy]:
    with FaultProxy(upstream) as p:
        yield p


def roundtrip(proxy: FaultProxy, payload: bytes = b"ping", timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout) as sock:
        sock.sendall(payload)
        return sock.recv(4096)


def test_pass_forwards_and_counts(proxy: FaultProxy) -> None:
    assert proxy.url == f"http://127.0.0.1:{proxy.port}"
    assert roundtrip(proxy, b"hello") == b"HELLO"
    stats = proxy.stats()
    assert (stats.accepted, stats.forwarded, stats.bytes_up, stats.bytes_down) == (1, 1, 5, 5)
    proxy.reset_stats()
    assert proxy.stats().bytes_up == 0


def test_latency_holds_requests(proxy: FaultProxy) -> None:
    with proxy.fault(FaultMode.LATENCY, latency_s=1.0):
        with pytest.raises(TimeoutError):
            roundtrip(proxy, timeout=0.2)  # far shorter than the added latency
        assert proxy.stats().delayed == 1
    assert roundtrip(proxy) == b"PING"


def test_reset_resets_connections(proxy: FaultProxy) -> None:
    with proxy.fault(FaultMode.RESET):
        with pytest.raises(ConnectionResetError):
            roundtrip(proxy)
        assert proxy.stats().resets == 1
        assert proxy.stats().bytes_up == 0
    assert roundtrip(proxy) == b"PING"


@pytest.mark.parametrize("attempt", range(5))
def test_reset_applies_to_open_connections(proxy: FaultProxy, attempt: int) -> None:
    """An open connection is reset (RST), not closed cleanly: a clean close (recv returning
    b"") fails the test instead of standing in for the reset (issue 11 item 6)."""
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        sock.sendall(b"a")
        assert sock.recv(10) == b"A"
        proxy.set_mode(FaultMode.RESET)
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            sock.sendall(b"b")
            data = sock.recv(10)
            pytest.fail(f"the connection was closed cleanly (recv gave {data!r}), not reset")
    proxy.set_mode(FaultMode.PASS)


def test_down_refuses_then_listens_again_on_the_same_port(proxy: FaultProxy) -> None:
    port = proxy.port
    with socket.create_connection(("127.0.0.1", port), timeout=5) as open_conn:
        open_conn.sendall(b"x")
        assert open_conn.recv(10) == b"X"
        proxy.set_mode(FaultMode.DOWN)
        with pytest.raises(ConnectionRefusedError):
            roundtrip(proxy)
        with pytest.raises(ConnectionResetError):  # the open connection was cut (reset) too
            open_conn.recv(10)
    proxy.set_mode(FaultMode.PASS)
    assert proxy.port == port and roundtrip(proxy) == b"PING"


def test_only_loopback_and_real_modes() -> None:
    with pytest.raises(ValueError):
        FaultProxy(("127.0.0.1", 1), host="0.0.0.0")
    with FaultProxy(("127.0.0.1", 1)) as p, pytest.raises(ValueError):
        p.set_mode(FaultMode.LATENCY)


@pytest.mark.parametrize(
    ("dependency", "var"),
    [("dynamodb", "AWS_ENDPOINT_URL_DYNAMODB"), ("sqs", "AWS_ENDPOINT_URL_SQS")],
)
def test_dependency_env_var(dependency: str, var: str) -> None:
    assert dependency_env_var(dependency) == var
