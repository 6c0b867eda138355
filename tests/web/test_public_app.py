"""The internet-facing app serves its few routes and nothing of the preview."""

from __future__ import annotations

from pathlib import Path

from flask.testing import FlaskClient

from tests.web.conftest import SLUG, STORED, assert_no_absolute_path


def test_the_public_app_has_only_its_routes(public: FlaskClient) -> None:
    rules = {(rule.rule, method) for rule in public.application.url_map.iter_rules()
             for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}}
    assert rules == {
        ("/unsubscribe/<token>", "GET"), ("/unsubscribe/<token>", "POST"),
        ("/events/brevo", "POST"), ("/events/brevo/<token>", "POST"),
        ("/events/sendgrid", "POST"), ("/healthz", "GET"),
        ("/editions/", "GET"), ("/editions/<slug>/<lang>", "GET"),
        ("/media/<name>", "GET"),
        ("/r/<path:token>", "GET"),
    }


def test_the_public_app_shows_no_preview_contact_or_edition(
    public: FlaskClient, home: Path
) -> None:
    for path in ("/", f"/preview/{SLUG}", f"/preview/{SLUG}?contact={STORED}",
                 f"/preview/{SLUG}/email.html", f"/preview/{SLUG}/email.txt?contact={STORED}",
                 "/preview/2031-01-01-unpublished"):
        answer = public.get(path)
        body = answer.get_data(as_text=True)
        assert answer.status_code == 404, path
        assert STORED not in body and "Haruto" not in body and "佐藤" not in body
        assert SLUG not in body and "unpublished" not in body
        assert_no_absolute_path(body, home)


def test_healthz_answers_without_the_store(public: FlaskClient) -> None:
    answer = public.get("/healthz")
    assert answer.status_code == 200
    assert answer.get_data(as_text=True) == "OK\n"
    assert answer.mimetype == "text/plain"
