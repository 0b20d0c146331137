"""Warnings shown where the person looks, not only in the server console.

Every node's `execute` is wrapped by `@shows_warnings`. While it runs, each WARNING the pack logs (from
`mofo_core` or `nodes`, on this thread) is, besides going to the server log as before:

1. written on the node itself (`PromptServer.send_progress_text`, the text core nodes such as Get Image Size
   draw under a node; feature-detected, present in the 0.29 the tests run),
2. sent as a `mofo.warning` event {node, message}, which `web/mofo_warnings.js` shows as a toast,
3. returned in the node's UI output under `mofo_warnings`, so it is kept in the queue history (`/history`).

A warning is a legitimate result with a caveat (a prompt cut at 512 tokens, an empty point cloud, depth with
invalid pixels); errors are still raised and shown by ComfyUI's error panel.

One warning from outside the pack is shown too: torch.compile giving up on a function after too many compiled
versions ("torch._dynamo hit config.recompile_limit", torch/_dynamo/convert_frame.py). The blocks then run
uncompiled, which the console alone said; here it is rewritten into what happened and what to do.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import threading

EVENT = "mofo.warning"
UI_KEY = "mofo_warnings"
# The pack's root logger: `<pack>.nodes.messages` -> `<pack>`; `mofo_core` loggers are `<pack>.mofo_core.*` here
# because the nodes import the core relatively (ComfyUI names the pack module after its folder path).
PACK_LOGGER = __name__.rsplit(".", 2)[0] if __name__.count(".") >= 2 else __name__
COMPILE_LOGGER = "torch._dynamo.convert_frame"  # where dynamo logs that it stopped compiling a function
_LIMIT_HIT = re.compile(r"torch\._dynamo hit config\.(\w+) \((\d+)\)(?:.*?function: (.+?)\n)?", re.S)


def compile_limit_message(text: str) -> str | None:
    """Dynamo's recompile-limit warning rewritten for the person at the node; None for its other warnings."""
    m = _LIMIT_HIT.search(text)
    if m is None:
        return None
    limit, n, func = m.group(1), m.group(2), (m.group(3) or "a compiled function").strip()
    return (f"torch.compile stopped compiling {func}: it already holds {n} compiled versions ({limit}), one per "
            "size, batch size and weight dtype used in this session. It now runs uncompiled (~1.4x slower). "
            "Restart ComfyUI to compile again.")


class _Collector(logging.Handler):
    def __init__(self, node_id):
        super().__init__(logging.WARNING)
        self.node_id, self.thread = node_id, threading.get_ident()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self.thread:  # another prompt's worker thread, or a server thread
            return
        try:
            msg = record.getMessage()
        except Exception:  # a malformed log call must not break the node
            msg = str(record.msg)
        if record.name == COMPILE_LOGGER:
            msg = compile_limit_message(msg)
            if msg is None:
                return
        self.messages.append(msg)
        _send(self.node_id, msg, self.messages)


def _send(node_id, msg: str, all_msgs: list[str]) -> None:
    """Push one warning to the browser; outside a server (tests, scripts) there is nobody to tell."""
    try:
        from server import PromptServer
    except ImportError:
        return
    server = getattr(PromptServer, "instance", None)
    if server is None:
        return
    sid = getattr(server, "client_id", None)  # the browser that queued this prompt (None: every browser)
    try:
        server.send_sync(EVENT, {"node": node_id, "message": msg}, sid)
        if node_id is not None and hasattr(server, "send_progress_text"):
            server.send_progress_text("\n".join(f"⚠ {m}" for m in all_msgs), node_id, sid)
    except Exception as e:  # a closed socket must not fail the generation
        logging.getLogger(__name__).debug("warning not sent to the UI: %s", e)


@contextlib.contextmanager
def collect_warnings(node_id=None):
    """Collect (and forward to the UI) the pack's warnings logged inside the block; yields the list."""
    handler = _Collector(node_id)
    loggers = [logging.getLogger(PACK_LOGGER), logging.getLogger(COMPILE_LOGGER)]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


def add_to_ui(out, messages: list[str]):
    """The node's NodeOutput with `mofo_warnings` added to its UI dict (nothing changes without warnings)."""
    if not messages:
        return out
    ui = out.ui
    if ui is not None and not isinstance(ui, dict):
        ui = ui.as_dict()  # ComfyUI's ui.PreviewImage and friends
    out.ui = {**(ui or {}), UI_KEY: list(messages)}
    return out


def shows_warnings(execute):
    """Decorator for a node's `execute(cls, **inputs)` (put it under @classmethod): see the module docstring."""

    @functools.wraps(execute)
    def wrapper(cls, *args, **kwargs):
        hidden = getattr(cls, "hidden", None)
        with collect_warnings(getattr(hidden, "unique_id", None)) as messages:
            out = execute(cls, *args, **kwargs)
        return add_to_ui(out, messages)

    return wrapper
