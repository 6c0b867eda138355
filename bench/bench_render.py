"""Personalised newsletter messages per second, up to MIME bytes, against the plain approach.

Run: .venv/bin/python bench/bench_render.py [--contacts 10000]
Prints, for the same contacts in the same run:
  - render once + slots + the fast MIME builder (this project);
  - the plain approach: Jinja2 render of the whole template per contact, typography on it
    (French spaces, Japanese phrases: the text part's filters, then the HTML and the
    subject), then EmailMessage with set_content / add_alternative / as_bytes;
and the peak RSS growth of each, at two list sizes, to show memory stays flat; then the
same edition with two conditional sections (only_for one list, except_for another), each
reader on some of the lists: one rendered variant per language and combination, not per
reader (target >= 5,000 msg/s per core there too).
"""

from __future__ import annotations

import argparse
import gc
import resource
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from email.utils import formataddr
from pathlib import Path

from clubjapon_ops.contacts import Contact
from clubjapon_ops.delivery.message import MimeBuilder, message_id
from clubjapon_ops.listnames import list_key
from clubjapon_ops.newsletter.render import HTML_TEMPLATE, TEXT_TEMPLATE, greeting
from clubjapon_ops.newsletter.service import Newsletter, load_newsletter
from clubjapon_ops.newsletter.typography import typeset, typeset_html
from clubjapon_ops.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]
SLUG = "2025-11-04-lille"
NAMES = {"fr": ("Camille", "Martin"), "en": ("Emily", "Clarke"), "ja": ("陽翔", "佐藤")}


def contacts(n: int) -> Iterator[Contact]:
    """Generate contacts lazily, a third in each language."""
    for i in range(n):
        lang = ("fr", "en", "ja")[i % 3]
        first, last = NAMES[lang]
        yield Contact(email=f"reader{i}@example.com", source="bench",
                      first_name=f"{first}{i}", last_name=last, language=lang)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(name: str, build: Callable[[Contact], bytes], n: int, *,
            cpu_rate: bool = False) -> float:
    """Build n messages, print the rate and bytes; return messages per second (per CPU-second
    with ``cpu_rate``: what a comparison on a shared machine can trust)."""
    gc.collect()
    start, cpu, size = time.perf_counter(), time.process_time(), 0
    for contact in contacts(n):
        size += len(build(contact))
    elapsed = time.perf_counter() - start
    rate = n / elapsed
    # Per CPU-second too: on a shared machine the wall clock counts other people's work.
    per_cpu = n / max(time.process_time() - cpu, 1e-9)
    print(f"  {name:<34} {rate:>9,.0f} msg/s  {elapsed:6.2f} s  avg {size / n / 1024:5.1f} KB"
          f"  peak RSS {peak_rss_mb():6.1f} MB  {per_cpu:>9,.0f} msg/CPU-s")
    return per_cpu if cpu_rate else rate


def main() -> None:
    """Run both approaches and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes, seconds: does the bench still work? (the suite runs it)")
    parser.add_argument("--skip-plain", action="store_true", help="leave out the slow baseline")
    args = parser.parse_args()
    if args.smoke:
        args.contacts = 300
    settings = load_settings(ROOT, environ={})
    newsletter = load_newsletter(
        settings, SLUG, lambda c, row: f"{settings.public_url}/unsubscribe/token-for-{c.email}")
    builder = MimeBuilder(settings.mail_from)

    def fast(contact: Contact) -> bytes:
        return builder.build(newsletter.personalise(contact), edition=SLUG)

    renderer = newsletter.renderer
    html_t = renderer.env.get_template(HTML_TEMPLATE)
    text_t = renderer.env.get_template(TEXT_TEMPLATE)
    contexts = {lang: renderer.context(newsletter.edition, lang) for lang in newsletter.rendered}

    def plain(contact: Contact) -> bytes:
        lang = newsletter.personaliser.language_for(contact)
        values = {
            "greeting": greeting(renderer.strings[lang], contact, lang),
            "email": contact.email,
            "unsubscribe_url": f"{settings.public_url}/unsubscribe/token-for-{contact.email}",
        }
        ctx = {**contexts[lang], "slot": values.__getitem__}
        msg = EmailMessage()
        msg["From"] = settings.mail_from
        msg["To"] = formataddr((f"{contact.first_name} {contact.last_name}", contact.email))
        msg["Subject"] = typeset(newsletter.edition.subject[lang], lang)
        msg["Message-ID"] = message_id(SLUG, contact.email, builder.domain)
        # The wrap and heading filters typeset as they wrap; the rest is set on the whole.
        msg.set_content(typeset(text_t.render(ctx), lang))
        msg.add_alternative(typeset_html(html_t.render(ctx), lang), subtype="html")
        return msg.as_bytes()

    print(f"Edition {SLUG}; {args.contacts:,} contacts (fr/en/ja in thirds); one core")
    rss_start = peak_rss_mb()
    measure("render once + slots (1/10 list)", fast, args.contacts // 10)
    rss_small = peak_rss_mb()
    ours = measure("render once + slots", fast, args.contacts)
    rss_full = peak_rss_mb()
    if not args.skip_plain:
        baseline = 30 if args.smoke else max(1000, args.contacts // 5)
        base = measure("plain Jinja2 + EmailMessage", plain, baseline)
        print(f"speed-up: {ours / base:.1f}x  (target >= 5,000 msg/s and 10x)")
    print(f"peak RSS: start {rss_start:.1f} MB, after {args.contacts // 10:,} {rss_small:.1f} MB, "
          f"after {args.contacts:,} {rss_full:.1f} MB (flat: messages are not kept)")
    conditional(settings, newsletter, builder, args.contacts)
    tracked_links(args.contacts)


def conditional(settings: object, newsletter: Newsletter, builder: MimeBuilder, n: int) -> None:
    """Two sections for part of the audience: a variant per combination, rendered once."""
    sections = list(newsletter.edition.sections)
    sections[1] = sections[1].model_copy(update={"only_for": ["Opéra 2025"]})
    sections[2] = sections[2].model_copy(update={"except_for": ["Presse"]})
    edition = newsletter.edition.model_copy(update={"sections": sections})
    variant = Newsletter(edition, newsletter.renderer, newsletter.rendered,
                         newsletter.personaliser)
    # A reader's lists as the sender has them: keys, looked up once per claimed batch.
    on = [frozenset(), frozenset({list_key("Opéra 2025")}), frozenset({list_key("Presse")}),
          frozenset({list_key("Opéra 2025"), list_key("Presse")})]
    counter = iter(range(10**12))

    def fast(contact: Contact) -> bytes:
        return builder.build(variant.personalise(contact, on[next(counter) % 4]), edition=SLUG)

    rate = measure("two conditional sections", fast, n)
    print(f"conditional: {len(variant._variants)} variants rendered for {n:,} messages "
          f"(3 languages x 4 combinations at most); {rate:,.0f} msg/s (target >= 5,000)")


def tracked_links(n: int) -> None:
    """The edition with two https links (an image link, a button): sent as they are, through
    the click redirect (aggregate), and with every reader's row in them (consent, all agreed).
    """
    import shutil
    import tempfile

    import yaml

    from clubjapon_ops.delivery.clicks import ClickSigner, link_href

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        shutil.copytree(ROOT / "config" / "editions", home / "config" / "editions")
        shutil.copytree(ROOT / "templates", home / "templates")
        path = home / "config" / "editions" / f"{SLUG}.yaml"
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        data["sections"][-1:-1] = [
            {"type": "image", "url": "https://photos.example.org/lille.jpg",
             "alt": {"fr": "Photos", "en": "Photos", "ja": "写真"}, "width": 600,
             "height": 300, "link": "https://photos.example.org/2025/lille"},
            {"type": "cta", "label": {"fr": "S'inscrire", "en": "Register", "ja": "申し込む"},
             "url": "https://inscription.example.org/salon-2026"}]
        path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False),
                        encoding="utf-8")
        settings = load_settings(home, environ={"CLUBJAPON_SECRET": "bench-secret-0123456789"})
        signer = ClickSigner("bench-secret-0123456789")
        builder = MimeBuilder(settings.mail_from)

        def unsubscribe(c: Contact, row: int | None) -> str:
            return f"{settings.public_url}/unsubscribe/token-for-{c.email}"

        kinds = {
            "links as they are (off)": {},
            "through /r/ (aggregate)": {"links": link_href(settings, signer)},
            "through /r/ + row (consent, all)": {
                "links": link_href(settings, signer),
                "reader_part": lambda c, row: signer.reader_part(row)},
        }
        print("Two https links in the edition; CLUBJAPON_LINK_TRACKING:")
        rates, renders = {}, {}
        for name, extra in kinds.items():
            start = time.perf_counter()
            for _ in range(3):
                newsletter = load_newsletter(settings, SLUG, unsubscribe, **extra)  # type: ignore[arg-type]
            renders[name] = (time.perf_counter() - start) / 3

            def fast(contact: Contact, newsletter: Newsletter = newsletter) -> bytes:
                row = int(contact.email.removeprefix("reader").partition("@")[0])
                return builder.build(newsletter.personalise(contact, row=row), edition=SLUG)

            measure(name + " (warm-up)", fast, max(100, n // 10))
            rates[name] = measure(name, fast, n, cpu_rate=True)
        off, agg, consent = rates.values()
        r_off, r_agg, r_consent = renders.values()
        print(f"render once (3 languages): {r_off * 1000:.0f} ms off, {r_agg * 1000:.0f} ms "
              f"aggregate, {r_consent * 1000:.0f} ms consent")
        print("per CPU-second: link rewriting costs the render-once path "
              f"{100 * (1 - agg / off):.1f} % (aggregate) and "
              f"{100 * (1 - consent / off):.1f} % (consent, every reader agreed); "
              "target < 10 %")


if __name__ == "__main__":
    main()
