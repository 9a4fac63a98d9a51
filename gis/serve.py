"""The production web server of `serve`/`demo`: gunicorn with several worker processes (Linux).

Each worker builds its own app and connection pool after the fork (psycopg2 connections must never
cross a fork); the embedded database, when used, belongs to the parent command and outlives workers.
`GRIDGOV_SERVER=waitress` keeps the single-process server (Windows, debugging).
"""

from __future__ import annotations

import errno
import logging
import os
import re
import selectors
import socket
import struct
import time
from collections.abc import Callable
from functools import partial

from gunicorn.workers.gthread import TConn, ThreadWorker

HEADER_END = re.compile(rb"\r?\n\r?\n")
MAX_HEADER_BYTES = 100 * 8192 + 8192   # limit_request_fields × field size + the request line: past it, the
                                        # parser answers 431/400 itself
MAX_GATED_BODY = 27 * 1024 * 1024      # above the app's MAX_CONTENT_LENGTH: a larger body is not waited for,
                                        # the app refuses it (413) from the Content-Length alone
_CONTENT_LENGTH = re.compile(rb"\ncontent-length[ \t]*:[ \t]*(\d{1,12})[ \t]*\r?\n", re.I)
_CHUNKED = re.compile(rb"\ntransfer-encoding[ \t]*:[^\n]*chunked", re.I)


def request_end(buf: bytes | bytearray) -> int | None:
    """Bytes of `buf` that make one complete request (headers + announced body), or None while incomplete.

    A header block past MAX_HEADER_BYTES, a chunked body or a body past MAX_GATED_BODY is "complete" at the
    end of what is there: the parser then refuses it, or (chunked) reads it under the socket timeouts.
    """
    m = HEADER_END.search(buf, 0, MAX_HEADER_BYTES + 4)
    if m is None:
        return len(buf) if len(buf) > MAX_HEADER_BYTES else None
    head = bytes(buf[: m.end()])
    if _CHUNKED.search(head):
        return m.end()
    cl = _CONTENT_LENGTH.search(head)
    need = m.end() + (int(cl.group(1)) if cl else 0)
    if need - m.end() > MAX_GATED_BODY:
        return m.end()
    return need if len(buf) >= need else None


class GatedThreadWorker(ThreadWorker):
    """gunicorn's gthread worker that commits a thread to a connection only once its request is complete.

    Stock gthread hands a connection to a thread as soon as its first bytes arrive; a client that then stalls
    (partial headers, or a Content-Length larger than the body it sends) holds that thread in a blocking
    recv(), and a few hundred such connections stop the server answering (issue 8). Here the header block and
    the body it announces are read on the worker's event loop without blocking, as waitress does: the
    headers must be complete within `read_timeout` seconds of the first byte, and the body must keep coming
    (at most `read_timeout` seconds between two reads), or the connection is closed. Once in a thread, every
    recv()/send() on the socket gives up after `read_timeout` seconds without progress (SO_RCVTIMEO/
    SO_SNDTIMEO). Kept-alive connections go through the same gate for their next request.
    """

    read_timeout = 15.0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.gated: set = set()   # connections whose request is still incomplete

    def init_process(self):
        logging.getLogger("gunicorn.error").addFilter(_quiet_slow_clients)
        super().init_process()

    # -- the gate: the request is read on the event loop ------------------------------------------------
    def accept(self, listener):
        try:
            client_sock, client_addr = listener.accept()
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        self._gate(TConn(self.cfg, client_sock, client_addr, listener.getsockname()))  # non-blocking

    def _gate(self, conn) -> None:
        conn.gate_buf = bytearray()
        conn.gate_headers_by = time.monotonic() + self.read_timeout
        conn.gate_idle_by = conn.gate_headers_by
        self.gated.add(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_gated_readable, conn))

    def _on_gated_readable(self, conn, _client) -> None:
        try:
            data = conn.sock.recv(262144)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:                                  # the client went away
            self._drop_gated(conn)
            return
        conn.gate_buf += data
        conn.gate_idle_by = time.monotonic() + self.read_timeout
        if request_end(conn.gate_buf) is not None:
            self.poller.unregister(conn.sock)
            self.gated.discard(conn)
            conn.data_ready = True
            self.enqueue_req(conn)

    def _drop_gated(self, conn) -> None:
        try:
            self.poller.unregister(conn.sock)
        except (OSError, KeyError, ValueError):
            pass
        self.gated.discard(conn)
        self.nr_conns -= 1
        conn.close()

    def on_client_socket_readable(self, conn, client):
        """A kept-alive connection sends its next request: through the gate as well."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self._gate(conn)
        self._on_gated_readable(conn, client)

    def murder_pending(self):
        super().murder_pending()
        now = time.monotonic()
        for conn in [c for c in self.gated if c.gate_idle_by <= now
                     or (c.gate_headers_by <= now and HEADER_END.search(c.gate_buf) is None)]:
            self._drop_gated(conn)

    # -- in a thread: the buffered headers go to the parser; reads and writes are bounded ---------------
    def handle(self, conn):
        buf = getattr(conn, "gate_buf", None)
        if buf is not None:
            conn.gate_buf = None
            conn.sock.setblocking(True)
            try:
                conn.init()
            except OSError:
                return False
            conn.parser.unreader.unread(bytes(buf))
        _bound_io(conn.sock, self.read_timeout)
        return super().handle(conn)


def _bound_io(sock, seconds: float) -> None:
    """Blocking recv()/send() on `sock` fail after `seconds` without progress (kernel socket timeouts)."""
    tv = struct.pack("ll", int(seconds), int((seconds % 1) * 1e6))
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)
    except OSError:
        pass


def _quiet_slow_clients(record: logging.LogRecord) -> bool:
    """A client cut for stalling is routine: one warning line instead of gunicorn's stack trace."""
    exc = record.exc_info[1] if record.exc_info else None
    if isinstance(exc, (BlockingIOError, TimeoutError)):
        record.msg, record.args = "slow client cut after the read timeout", ()
        record.exc_info, record.exc_text = None, None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
    return True


def gunicorn_options(settings) -> dict:
    """gunicorn settings from ours: gthread workers, bounded request sizes, timeouts against slow clients."""
    return {
        "bind": f"{settings.host}:{settings.port}",
        "workers": settings.workers,
        "threads": settings.threads,
        "worker_class": "gis.serve.GatedThreadWorker",
        "timeout": 60,                 # a worker stuck this long is replaced
        "graceful_timeout": 10,
        "keepalive": 5,
        "limit_request_line": 8190,
        "limit_request_fields": 100,
        "limit_request_field_size": 8190,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "warning",
        "preload_app": False,          # the app (and its pool) is built in each worker, after the fork
        "proc_name": "gridgov",
    }


def run_gunicorn(settings, make_app: Callable[[], object], on_start: Callable[[], None] | None = None) -> None:
    """Serve `make_app()` (called once per worker) until SIGINT/SIGTERM."""
    from gunicorn.app.base import BaseApplication

    opts = gunicorn_options(settings)
    GatedThreadWorker.read_timeout = float(settings.read_timeout)

    class _App(BaseApplication):
        def load_config(self):
            for k, v in opts.items():
                self.cfg.set(k, v)
            if on_start is not None:
                self.cfg.set("when_ready", lambda server: on_start())

        def load(self):
            return make_app()

    parent = os.getpid()
    try:
        _App().run()
    except SystemExit as e:
        if os.getpid() != parent:
            # a worker leaving: gunicorn has cleaned up; never run the parent's cleanup (it would stop the
            # embedded database) in a forked worker
            os._exit(e.code if isinstance(e.code, int) else 1)
        if e.code not in (0, None):   # the arbiter exits on shutdown: the caller cleans up instead
            raise
