"""The offline lint rules: client support (caniemail data), charset position, same-colour
text, the postal address, encoded header lines."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from clubjapon_ops.delivery.message import MimeBuilder
from clubjapon_ops.delivery.newsletter_check import check_newsletter
from clubjapon_ops.newsletter.contrast import contrast_ratio, parse_colour, same_colour_text
from clubjapon_ops.newsletter.email_support import support_data, unsupported
from clubjapon_ops.newsletter.lint import (
    CHARSET_WINDOW,
    charset_problem,
    client_support,
    header_problems,
    lint_messages,
)
from clubjapon_ops.newsletter.render import PersonalMessage
from clubjapon_ops.newsletter.service import (
    SAMPLE_CONTACTS,
    Newsletter,
    load_newsletter,
)
from clubjapon_ops.settings import Settings, load_settings
from tests.conftest import REPO
from tests.newsletter.conftest import SLUG

ADDRESS = ("Club Japon des Hauts-de-France", "12 rue Nationale", "59000 Lille")


@pytest.fixture
def newsletter(project_settings: Settings) -> Newsletter:
    return load_newsletter(project_settings, SLUG)


def samples(newsletter: Newsletter) -> dict[str, PersonalMessage]:
    return {lang: newsletter.personalise(SAMPLE_CONTACTS[lang])
            for lang in newsletter.edition.languages}


def with_html(message: PersonalMessage, before_body_end: str,
              text_end: str = "") -> PersonalMessage:
    """The message with HTML added before </body>, and text added at the end."""
    rendered = message.rendered
    html = dataclasses.replace(rendered.html, statics=tuple(
        s.replace("</body>", before_body_end + "</body>") for s in rendered.html.statics))
    text = dataclasses.replace(rendered.text, statics=(
        *rendered.text.statics[:-1], rendered.text.statics[-1] + text_end))
    return dataclasses.replace(message, rendered=dataclasses.replace(rendered, html=html,
                                                                     text=text))


# --- the real edition --------------------------------------------------------------------

def test_the_real_edition_has_no_offline_error(
        project_settings: Settings, newsletter: Newsletter) -> None:
    problems = check_newsletter(project_settings, SLUG)
    assert [p for p in problems if p.level == "error"] == []
    # The house template's client support is measured in test_template_support.py, never
    # shown by the lint; the rule still finds what Outlook and Gmail lack.
    assert not [p for p in problems if p.rule == "client-support"]
    support = client_support(samples(newsletter))
    assert any("Outlook for Windows" in p.message and "https://www.caniemail.com/features/"
               in p.message for p in support)


def test_a_real_send_without_the_postal_address_is_an_error(newsletter: Newsletter) -> None:
    messages = samples(newsletter)
    errors = [p for p in lint_messages(messages, for_send=True) if p.level == "error"]
    assert [(p.rule, p.where) for p in errors] == [("postal-address", "settings")]
    assert "CLUBJAPON_POSTAL_ADDRESS" in errors[0].message
    # The outbox's messages stay on this machine: a warning only.
    local = lint_messages(messages, for_send=False)
    assert [p.level for p in local if p.rule == "postal-address"] == ["warning"]


def test_a_real_send_with_the_address_set_finds_it_in_every_footer(project: Path) -> None:
    # The setting as ops write it, through the renderer's footer, checked by the lint.
    settings = load_settings(project, environ={
        "CLUBJAPON_POSTAL_ADDRESS": "Club Japon des Hauts-de-France; 151 avenue du Président "
                                    "Hoover; 59555 Lille Cedex"})
    problems = check_newsletter(settings, SLUG, for_send=True)
    assert [p for p in problems if p.level == "error"] == []
    assert not [p for p in problems if p.rule == "postal-address"]


@pytest.mark.parametrize("address", [
    # Typography sets these lines in the footer (U+202F before "!", phrase breaks in
    # Japanese): the lint must still find them (it called them missing, stopping the send).
    "Club Japon ! ; 151 avenue du Président Hoover ; 59555 Lille Cedex",
    "北海道札幌市中央区北一条西二丁目; フランス・リール市",
])
def test_the_address_is_found_through_the_typography(project: Path, address: str) -> None:
    settings = load_settings(project, environ={"CLUBJAPON_POSTAL_ADDRESS": address})
    problems = check_newsletter(settings, SLUG, for_send=True)
    assert not [p for p in problems if p.rule == "postal-address"], problems


def test_a_postal_address_the_footer_does_not_show_is_an_error(newsletter: Newsletter) -> None:
    problems = lint_messages(samples(newsletter), postal_address=ADDRESS)
    missing = [p for p in problems if p.rule == "postal-address"]
    assert {p.where for p in missing} == {f"{lang} {part}" for lang in ("fr", "en", "ja")
                                          for part in ("html", "text")}
    assert all(p.level == "error" and "12 rue Nationale" in p.message for p in missing)


def test_a_postal_address_in_both_parts_passes(newsletter: Newsletter) -> None:
    message = newsletter.personalise(SAMPLE_CONTACTS["fr"])
    footer = "Club Japon des Hauts-de-France<br>12&nbsp;rue Nationale<br>59000\u202fLille"
    shown = with_html(message, f"<p>{footer}</p>",
                      "\nClub Japon des Hauts-de-France, 12 rue Nationale, 59000 Lille\n")
    problems = lint_messages({"fr": shown}, postal_address=ADDRESS, for_send=True)
    assert [p for p in problems if p.rule == "postal-address"] == []


# --- charset -----------------------------------------------------------------------------

def test_meta_charset_must_end_within_the_first_1024_bytes() -> None:
    early = '<!DOCTYPE html><html><head><meta charset="utf-8">'
    assert charset_problem(early + "<style>" + "x" * 2000 + "</style>") is None
    late = "<!DOCTYPE html><html><head><style>" + "é" * 500 + '</style><meta charset="utf-8">'
    reason = charset_problem(late)
    assert reason is not None
    assert f"past the first {CHARSET_WINDOW} bytes" in reason  # bytes, not characters
    assert "no <meta charset>" in (charset_problem("<html><head></head></html>") or "")
    http_equiv = '<meta http-equiv="Content-Type" content="text/html; charset=utf-8">'
    assert charset_problem(http_equiv) is None


# --- same-colour text --------------------------------------------------------------------

@pytest.mark.parametrize(("html", "found"), [
    ('<body bgcolor="#ffffff"><p style="color:#ffffff">hidden</p></body>', ["hidden"]),
    ('<table bgcolor="#f3f1ee"><tr><td><div style="color:#F3F1EE;display:none">pre</div>'
     "</td></tr></table>", ["pre"]),
    ('<div style="background-color:#ffffff"><span style="color:#fefefe">near</span></div>',
     ["near"]),
    ('<td style="background:#1f3a5f url(x.png)"><a style="color:#1f3a5f">link</a></td>',
     ["link"]),
    ('<p style="color:#1f3a5f">navy on white</p>', []),
    ('<td bgcolor="#1f3a5f"><p style="color:#ffffff">white on navy</p></td>', []),
    ('<p style="color:rgba(255,255,255,0.5)">see-through</p>', []),
    ('<td bgcolor="#fff"><p style="color:#fff">&#847;&zwnj;&nbsp;</p></td>', []),
    ('<head><style>p { color: #fff }</style><title>t</title></head>', []),
    ('<td bgcolor="#ffffff" style="color:#ffffff"><p><br>x</p>y</td>', ["x", "y"]),
    ('<div style="color:#000"><td bgcolor="#000"></td>after</div>', []),
    # Broken values are not colours (this one stopped the whole lint with a ValueError).
    ('<td bgcolor="#fff"><p style="color: rgba(0,0,0,.)">x</p></td>', []),
    ('<td bgcolor="#fff"><p style="color: rgba(255,255,255,..5)">y</p></td>', []),
])
def test_same_colour_text_is_found_along_the_ancestors(html: str, found: list[str]) -> None:
    assert [f.text for f in same_colour_text(html)] == found


def test_colours_and_contrast() -> None:
    assert parse_colour("#ABC") == (0xAA, 0xBB, 0xCC)
    assert parse_colour("rgb(1, 2, 3) !important") == (1, 2, 3)
    assert parse_colour("transparent") is None
    assert contrast_ratio((0, 0, 0), (255, 255, 255)) == pytest.approx(21)
    assert contrast_ratio((31, 58, 95), (31, 58, 95)) == pytest.approx(1)


def test_same_colour_is_reported_with_colours_and_line(newsletter: Newsletter) -> None:
    message = newsletter.personalise(SAMPLE_CONTACTS["en"])
    hidden = with_html(message, '<p style="color:#fafafa;background-color:#ffffff">Secret</p>')
    [problem] = [p for p in lint_messages({"en": hidden}) if p.rule == "same-colour"
                 and "Secret" in p.message]
    assert problem.level == "warning"
    assert "#fafafa on #ffffff" in problem.message
    assert problem.where.startswith("en html line ")


# --- client support (caniemail) ----------------------------------------------------------

def test_vendored_data_names_its_source_commit_and_licence() -> None:
    data = support_data()
    assert data["source"] == "https://github.com/hteumeuleu/caniemail"
    assert len(data["commit"]) == 40
    assert data["licence"].startswith("MIT")
    source = (REPO / "src/clubjapon_ops/newsletter/data/SOURCE.md").read_text(encoding="utf-8")
    assert data["commit"] in source and "MIT" in source
    assert data["features"]["css-border-radius"]["support"]["Outlook for Windows"][
        "result"].startswith("n")


def test_outlook_and_gmail_gaps_are_named_with_the_caniemail_page() -> None:
    html = ('<html><head><style>.a:hover { color: red }</style></head><body>'
            '<a style="border-radius: 4px; display: flex" href="https://x.example">x</a>'
            "<!--[if mso]><v:roundrect style=\"opacity:0.5\"></v:roundrect><![endif]-->"
            "</body></html>")
    found = {u.slug: u for u in unsupported(html)}
    assert "css-border-radius" in found
    radius = found["css-border-radius"]
    assert ("Outlook for Windows", "not supported") in [c[:2] for c in radius.clients]
    assert "https://www.caniemail.com/features/css-border-radius/" in radius.describe()
    assert "css-display-flex" in found
    assert "css-pseudo-class-hover" in found
    assert "css-opacity" not in found  # only inside a conditional comment, for Outlook


def test_client_support_is_data_driven(monkeypatch: pytest.MonkeyPatch) -> None:
    """A feature the data says is supported everywhere is never reported; change the data
    and the same HTML is."""
    html = '<p style="color:#123456">x</p>'
    assert unsupported(html) == []
    data = json.loads(json.dumps(support_data()))
    data["features"]["css-color"] = {
        "title": "color", "url": "https://www.caniemail.com/features/css-color/",
        "detect": {"properties": ["color"]}, "notes": {},
        "support": {"Gmail (webmail)": {"version": "2099", "result": "n"}}}
    monkeypatch.setattr("clubjapon_ops.newsletter.email_support.support_data", lambda: data)
    [found] = unsupported(html)
    assert found.clients == (("Gmail (webmail)", "not supported", ""),)


def test_client_support_reports_each_feature_once_for_all_languages(
        newsletter: Newsletter) -> None:
    problems = client_support(samples(newsletter))
    titles = [p.message.split(":")[0] for p in problems]
    assert len(titles) == len(set(titles))
    assert all(p.level == "warning" for p in problems)


def test_the_vendoring_script_rebuilds_the_file_from_the_repository(tmp_path: Path) -> None:
    """tools/vendor_caniemail.py turns caniemail's front matter into the vendored shape."""
    repo = tmp_path / "caniemail"
    (repo / "_features").mkdir(parents=True)
    (repo / "_features" / "css-border-radius.md").write_text(
        '---\ntitle: "border-radius"\nstats: {\n\toutlook: {\n\t\twindows: {\n'
        '\t\t\t"2016":"n #1",\n\t\t\t"2019":"n #1"\n\t\t}\n\t},\n\tgmail: {\n'
        '\t\tdesktop-webmail: {\n\t\t\t"2019-08":"y",\n\t\t}\n\t}\n}\n'
        'notes_by_num: {\n\t"1": "Use VML."\n}\n---\n', encoding="utf-8")
    for command in (["init", "-q"], ["add", "."], ["-c", "user.email=t@example.org", "-c",
                                                   "user.name=t", "commit", "-qm", "x"]):
        subprocess.run(["git", "-C", str(repo), *command], check=True)
    run = subprocess.run([sys.executable, str(REPO / "tools" / "vendor_caniemail.py"),
                          str(repo)], capture_output=True, text=True, check=True)
    feature = json.loads(run.stdout)["features"]["css-border-radius"]
    assert feature["support"] == {"Outlook for Windows": {"version": "2019", "result": "n #1"}}
    assert feature["notes"] == {"1": "Use VML."}


# --- encoded header lines ----------------------------------------------------------------

def test_encoded_header_lines_over_76_are_errors(newsletter: Newsletter) -> None:
    message = newsletter.personalise(SAMPLE_CONTACTS["ja"])
    built = MimeBuilder("クラブ・ジャポン <club@example.org>").build(message, edition=SLUG)
    assert header_problems(built) == []
    word = "=?utf-8?b?" + "44Kv" * 15 + "?="  # 72 characters
    long_line = f"Subject: {word}\r\nTo: <a@example.org>\r\n\r\nbody".encode()
    [problem] = header_problems(long_line)
    assert "Subject: a line of 81 characters" in problem
    too_long_word = ("Subject:\r\n =?utf-8?b?" + "44Kv" * 17 + "?=\r\n\r\n").encode()
    assert any("an encoded word of 80 characters" in p for p in header_problems(too_long_word))
    plain = ("List-Unsubscribe: <https://x.example/" + "a" * 100 + ">\r\n\r\n").encode()
    assert header_problems(plain) == []  # no encoded word: RFC 5322's 998 applies
    problems = lint_messages({"ja": message}, mimes={"ja": long_line})
    assert [(p.level, p.where) for p in problems if p.rule == "header-lines"] == [
        ("error", "ja headers")]
