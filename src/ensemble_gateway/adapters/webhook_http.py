"""Outbound webhook HTTP: connect to the address that was checked, follow no redirects, bound time and size.

Time is bounded per attempt, not per socket operation: a socket timeout alone restarts with every
read, so a receiver sending one byte every few seconds could hold an attempt (and the delivery
worker running it) for as long as it liked. Every blocking call of an attempt (connect, TLS
handshake, send, each read of the status line, headers and body) gets the time left until one
deadline, and the attempt fails as a transport error once it has passed.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..domain.delivery import WebhookResponse
from ..domain.errors import WebhookTransportError
from ..domain.webhooks import CheckedWebhookTarget
from .dns import resolve_all

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

__all__ = ["DEFAULT_DEADLINE_SECONDS", "HttpWebhookSender", "WebhookDeadlineExceededError", "resolve_all"]

MAX_RESPONSE_BYTES = 64 * 1024
# Standard Webhooks asks receivers to answer within a few seconds; 10 s is generous.
DEFAULT_DEADLINE_SECONDS = 10.0
# One address that never answers a SYN must leave time to try the host's next address.
DEFAULT_CONNECT_TIMEOUT_SECONDS = 5.0


class WebhookDeadlineExceededError(TimeoutError):
    """The attempt used up its total time (an OSError: handled as any other transport failure)."""


class _Deadline:
    """The moment an attempt must be over, on a monotonic clock."""

    def __init__(self, seconds: float, clock: Callable[[], float]) -> None:
        self.seconds = seconds
        self._clock = clock
        self._at = clock() + seconds

    def remaining(self) -> float:
        """Seconds left; raise WebhookDeadlineExceededError when none are."""
        left = self._at - self._clock()
        if left <= 0:
            raise WebhookDeadlineExceededError(f"the attempt exceeded its {self.seconds:g} s deadline")
        return left


@contextmanager
def _within(sock: socket.socket, deadline: _Deadline | None) -> Iterator[None]:
    """Give the blocking call in the block the time left, and name the deadline if it runs out."""
    if deadline is None:
        yield
        return
    sock.settimeout(deadline.remaining())
    try:
        yield
    except TimeoutError:
        # The socket timeout was the time left: running out of it is running out of the deadline.
        raise WebhookDeadlineExceededError(f"the attempt exceeded its {deadline.seconds:g} s deadline") from None


class _DeadlineSocket(socket.socket):
    """A plain TCP socket whose reads and writes end at the attempt's deadline."""

    deadline: _Deadline | None = None

    def recv_into(self, buffer: WriteableBuffer, nbytes: int = 0, flags: int = 0) -> int:
        with _within(self, self.deadline):
            return super().recv_into(buffer, nbytes, flags)

    def recv(self, bufsize: int, flags: int = 0, /) -> bytes:
        with _within(self, self.deadline):
            return super().recv(bufsize, flags)

    def sendall(self, data: ReadableBuffer, flags: int = 0, /) -> None:
        # Since Python 3.5 a socket timeout bounds the whole sendall, not each chunk of it.
        with _within(self, self.deadline):
            super().sendall(data, flags)

    def send(self, data: ReadableBuffer, flags: int = 0, /) -> int:
        with _within(self, self.deadline):
            return super().send(data, flags)


class _DeadlineSSLSocket(ssl.SSLSocket):
    """A TLS socket whose reads and writes end at the attempt's deadline.

    ``recv``, ``recv_into`` and ``makefile`` reads all go through ``read``; ``sendall`` loops over
    ``send``: bounding those two bounds them all.
    """

    deadline: _Deadline | None = None

    def read(self, len: int = 1024, buffer: WriteableBuffer | None = None) -> bytes:
        with _within(self, self.deadline):
            return super().read(len, buffer)

    def send(self, data: ReadableBuffer, flags: int = 0) -> int:
        with _within(self, self.deadline):
            return super().send(data, flags)


def _connect(address: str, port: int, deadline: _Deadline, connect_timeout: float) -> _DeadlineSocket:
    """A TCP connection to the checked address (an IP literal: no name is resolved here)."""
    family, kind, proto, _, sockaddr = socket.getaddrinfo(
        address, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
    )[0]
    sock = _DeadlineSocket(family, kind, proto)
    try:
        sock.settimeout(min(connect_timeout, deadline.remaining()))
        try:
            sock.connect(sockaddr)
        except TimeoutError:
            deadline.remaining()  # names the deadline when it is what ran out
            raise
        sock.deadline = deadline
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except BaseException:
        sock.close()
        raise
    return sock


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, address: str, host: str, port: int, deadline: _Deadline, connect_timeout: float) -> None:
        super().__init__(host, port, timeout=deadline.seconds)
        self._address = address
        self._deadline = deadline
        self._connect_timeout = connect_timeout

    def connect(self) -> None:
        self.sock = _connect(self._address, self.port, self._deadline, self._connect_timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(
        self, address: str, host: str, port: int, deadline: _Deadline, connect_timeout: float, context: ssl.SSLContext
    ) -> None:
        super().__init__(host, port, timeout=deadline.seconds, context=context)
        self._address = address
        self._deadline = deadline
        self._connect_timeout = connect_timeout
        self._tls = context

    def connect(self) -> None:
        raw = _connect(self._address, self.port, self._deadline, self._connect_timeout)
        try:
            # SNI and certificate checks use the host name; the socket goes to the checked address.
            tls = self._tls.wrap_socket(raw, server_hostname=self.host, do_handshake_on_connect=False)
        except BaseException:
            raw.close()
            raise
        assert isinstance(tls, _DeadlineSSLSocket)
        try:
            with _within(tls, self._deadline):
                tls.do_handshake()
            tls.deadline = self._deadline
        except BaseException:
            tls.close()
            raise
        self.sock = tls


class HttpWebhookSender:
    """Sends one webhook POST within a total deadline, to the checked addresses, reading a bounded answer.

    Parameters
    ----------
    deadline_seconds
        The whole attempt (every address tried, connect, TLS, request, status, headers and the
        bounded body) ends within this; past it the attempt is a ``WebhookTransportError`` and
        retried on the schedule.
    connect_timeout_seconds
        At most this per address to connect (within the deadline), so that a host's next address
        can be tried when one does not answer.
    clock
        A monotonic clock (tests may pass their own).
    tls_context
        Makes the TLS context that verifies receivers (the system's CAs; tests trust their own).
    """

    def __init__(
        self,
        deadline_seconds: float = DEFAULT_DEADLINE_SECONDS,
        connect_timeout_seconds: float = DEFAULT_CONNECT_TIMEOUT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        tls_context: Callable[[], ssl.SSLContext] = ssl.create_default_context,
    ) -> None:
        self.deadline_seconds = deadline_seconds
        self.connect_timeout_seconds = connect_timeout_seconds
        self._clock = clock
        self._make_tls_context = tls_context
        self._tls: ssl.SSLContext | None = None

    def _tls_context(self) -> ssl.SSLContext:
        # Made on the first https webhook, not at cold start (loading the CA store takes a while),
        # and shared by the attempts that follow (a context may wrap sockets in several threads).
        if self._tls is None:
            context = self._make_tls_context()
            context.sslsocket_class = _DeadlineSSLSocket
            self._tls = context
        return self._tls

    def post(self, target: CheckedWebhookTarget, headers: Mapping[str, str], body: str) -> WebhookResponse:
        """POST ``body`` to ``target``'s checked addresses in turn until one answers.

        Raises
        ------
        WebhookTransportError
            No address answered within the deadline (refused, reset, timed out, bad HTTP).
        """
        parts = urlsplit(target.url)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        deadline = _Deadline(self.deadline_seconds, self._clock)
        last_error: Exception | None = None
        for address in target.addresses:
            connection: http.client.HTTPConnection
            if target.scheme == "https":
                connection = _PinnedHTTPSConnection(
                    address, target.host, target.port, deadline, self.connect_timeout_seconds, self._tls_context()
                )
            else:
                connection = _PinnedHTTPConnection(
                    address, target.host, target.port, deadline, self.connect_timeout_seconds
                )
            try:
                connection.request("POST", path, body=body.encode(), headers=dict(headers))
                response = connection.getresponse()
                # Read a bounded amount: a receiver must not make us buffer gigabytes.
                response.read(MAX_RESPONSE_BYTES)
                retry_after = response.getheader("Retry-After")
                return WebhookResponse(
                    status=response.status,
                    retry_after_seconds=int(retry_after) if retry_after and retry_after.isdigit() else None,
                )
            except WebhookDeadlineExceededError as error:
                # No time is left for another address.
                last_error = error
                break
            except (OSError, http.client.HTTPException) as error:
                last_error = error
            finally:
                connection.close()
        raise WebhookTransportError(f"{type(last_error).__name__}: {last_error}")
