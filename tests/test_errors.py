"""The one way a message quotes the error that caused it (:func:`tfopt.errors.one_line`), shared by verification,
the report and the int8 engine's fallback (each folded and cut the message itself)."""

from __future__ import annotations

import pytest

from tfopt.errors import one_line


@pytest.mark.parametrize("lines", [1, 3, 40])
@pytest.mark.parametrize("limit", [10, 300])
def test_one_line_folds_white_space_and_cuts_at_the_limit(lines, limit):
    exc = RuntimeError("\n".join(f"  line {i}\twith\r\ntabs  " for i in range(lines)))
    got = one_line(exc, limit)
    assert "\n" not in got and "\t" not in got and "  " not in got
    assert got == " ".join(str(exc).split())[:limit] and len(got) <= limit
    assert "line 0 with tabs".startswith(got) or got.startswith("line 0 with tabs")
