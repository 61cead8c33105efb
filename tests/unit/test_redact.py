"""buildmatrix.redact: credentials in URLs and text are found and masked."""

from __future__ import annotations

from buildmatrix.redact import has_credentials, redact, redact_url
from tests.support.verifying import PASSWORD, TOKEN


def test_redaction_helper() -> None:
    assert redact_url(f"https://user:{PASSWORD}@host/simple") == "https://***@host/simple"
    assert redact_url(f"https://host/simple?x=1&token={TOKEN}") == "https://host/simple?x=1&token=***"
    assert redact_url("https://host/simple/") == "https://host/simple/"
    assert has_credentials(f"https://{TOKEN}@host/")
    assert not has_credentials("https://host/?page=2")
    text = f"pip install --index-url https://u:{PASSWORD}@h/simple x && curl 'https://h/?api_key={TOKEN}'"
    assert PASSWORD not in redact(text)
    assert TOKEN not in redact(text)
