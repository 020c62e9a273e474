"""TensorFlow's refusals as tfopt reads them: the message without Python stack frames, and a one-line
summary naming the failing node."""

from __future__ import annotations

import re


def plain(message: str) -> str:
    """TensorFlow's message without Python stack frames (line numbers are not sizes)."""
    message = message.split("Original stack trace")[0]
    return "\n".join(line for line in message.splitlines() if 'File "' not in line)


def tf_error_summary(exc: BaseException) -> str:
    """``node 'rnn/Assert/Assert': assertion failed: [...]``: the failing node and TensorFlow's own
    message, without the Python stack (the whole message when it names no node)."""
    text = plain(str(exc))
    node = re.search(r"Detected at node '([^']+)'|\{\{node ([^}]+)\}\}", text)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    body = [line for line in lines if not line.startswith(("Graph execution error", "Detected at node", "Node:",
                                                            "[[{{node", "<stack traces unavailable>"))]
    summary = " ".join(" ".join(body).split())[:300] or " ".join(text.split())[:300]
    return f"node '{node.group(1) or node.group(2)}': {summary}" if node else summary
