"""Real local servers for the notification tests: an SMTP server and a recording webhook.

``SmtpServer`` is aiosmtpd in a thread; ``RecordingWebhook`` an ``http.server`` in a thread
that records what it accepted, can fail the next N requests, and can hold a request open
(before or after reading it) until the test releases it.
"""

from __future__ import annotations

import contextlib
import email
import json
import socket
import threading
from email import policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SmtpServer:
    """aiosmtpd on 127.0.0.1; ``messages`` holds each received mail (``email.message``)."""

    def __init__(self, *, login: tuple[str, str] | None = None) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self.messages: list = []
        self.envelopes: list = []
        self.port = free_port()
        outer = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd)
                outer.envelopes.append(envelope)
                outer.messages.append(email.message_from_bytes(envelope.content,
                                                               policy=policy.default))
                return "250 OK"

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = login is not None and (auth_data.login.decode(), auth_data.password.decode()) == login
            return AuthResult(success=ok)

        kwargs = {}
        if login is not None:
            kwargs = {"authenticator": authenticator, "auth_require_tls": False,
                      "auth_required": True}
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, **kwargs)

    def url(self, userinfo: str = "", query: str = "") -> str:
        at = f"{userinfo}@" if userinfo else ""
        return f"smtp://{at}127.0.0.1:{self.port}{'?' + query if query else ''}"

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()


class RecordingWebhook:
    """An HTTP server recording every POST it accepts (``received``: dicts of headers, json).

    ``fail_next`` makes the next N requests answer 500 (recorded in ``refused``);
    ``reply`` is the JSON answered on success (robots: ``{"errcode": 0}``). ``hold`` is None,
    "before_read" (a connection is accepted, then dropped unread once released) or
    "after_read" (the request is recorded, the answer waits for ``release``).
    """

    def __init__(self, reply: dict | None = None) -> None:
        self.reply = {} if reply is None else reply
        self.received: list[dict] = []
        self.refused: list[dict] = []
        self.fail_next = 0
        self.hold: str | None = None
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def handle(self):
                if outer.hold == "before_read":
                    outer.arrived.set()
                    outer.release.wait(60)
                    return  # close the connection without reading the request
                with contextlib.suppress(OSError):  # the client died while we held it
                    super().handle()

            def do_POST(self):  # noqa: N802 (http.server)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                record = {"path": self.path, "headers": dict(self.headers),
                          "json": json.loads(body.decode("utf-8"))}
                with outer.lock:
                    failing = outer.fail_next > 0
                    if failing:
                        outer.fail_next -= 1
                        outer.refused.append(record)
                    else:
                        outer.received.append(record)
                if outer.hold == "after_read" and not failing:
                    outer.arrived.set()
                    outer.release.wait(60)
                status, answer = (500, {"error": "down"}) if failing else (200, outer.reply)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)

    def keys(self) -> list[str]:
        """The idempotency keys of the accepted requests, in arrival order."""
        return [r["headers"].get("X-Idempotency-Key") for r in self.received]

    def __enter__(self) -> RecordingWebhook:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
