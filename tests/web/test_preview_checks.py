"""The preview page's checks: folded under a one-line summary, without what the house
template does on purpose (issue 24, item 3)."""

from __future__ import annotations

import re

from flask.testing import FlaskClient

from tests.web.conftest import SLUG


def test_the_preview_page_folds_the_checks_under_one_line(preview: FlaskClient) -> None:
    body = preview.get(f"/preview/{SLUG}?lang=fr").get_data(as_text=True)
    assert "client-support" not in body and "caniemail" not in body
    summary = re.search(r'<details id="checks"><summary id="checks-summary"[^>]*>([^<]*)<', body)
    assert summary is not None, body
    assert summary.group(1).startswith("0 errors, 1 warning; first: settings: "
                                       "CLUBJAPON_POSTAL_ADDRESS is not set")
