"""buildmatrix.installs.http: a 206 for other bytes than asked is an error."""

from __future__ import annotations

import pytest

from buildmatrix.redact import redact_url


def test_a_206_for_other_bytes_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from buildmatrix.installs import http

    def lying(url: str, headers: dict[str, str], *, limit: int | None) -> http.Response:
        return http.Response(206, {"content-range": "bytes 0-3/100"}, b"abcd", url)

    monkeypatch.setattr(http, "_request", lying)
    with pytest.raises(http.HttpError, match="not the range asked for"):
        http.fetch_range("https://user:secret@example.invalid/x.whl", 50, 53)
    assert "secret" not in redact_url("https://user:secret@example.invalid/x.whl")
