"""A minimal WebSocket reader (RFC 6455, client side) for ComfyUI's `/ws`: what the browser receives.

Only what the tests need: the opening handshake, and unfragmented text / binary frames from the server (which
never masks). Standard library only, so the integration suite needs no extra package.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct

TEXT_EVENT = 3  # ComfyUI protocol.py BinaryEventTypes.TEXT: progress text shown on a node


class WebSocket:
    def __init__(self, port: int, client_id: str, timeout: float = 5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /ws?clientId={client_id} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
                          .encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise ConnectionError("websocket handshake: connection closed")
            head += chunk
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(f"websocket handshake refused: {head[:200]!r}")

    def _exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("websocket closed")
            buf += chunk
        return buf

    def receive(self):
        """The next message: a dict (JSON text frame), or (event type, payload bytes) for a binary frame."""
        while True:
            b0, b1 = self._exact(2)
            op, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._exact(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._exact(8))[0]
            payload = self._exact(n)
            if op == 1:
                return json.loads(payload)
            if op == 2:
                return struct.unpack(">I", payload[:4])[0], payload[4:]
            if op == 8:
                raise ConnectionError("websocket closed by the server")
            # ping / pong / continuation: not sent by ComfyUI's aiohttp server without heartbeat; skip

    def close(self) -> None:
        self.sock.close()


def progress_text(payload: bytes) -> tuple[str, str]:
    """(node id, text) of a TEXT event (server.py send_progress_text: >I node-id length, node id, text)."""
    n = struct.unpack(">I", payload[:4])[0]
    return payload[4:4 + n].decode(), payload[4 + n:].decode()
