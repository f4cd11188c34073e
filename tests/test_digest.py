"""Digest composition: concrete cases, then Hypothesis over random MIME trees and broken bytes."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage, Message
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.rules.digest import Original, compatibility_key, compose, envelope_recipients, is_thread_reply
from agent.rules.htmltext import html_to_text, sanitise_html
from agent.rules.mimetext import decode_bytes

NOW = datetime(2025, 3, 3, 9, 30, tzinfo=timezone(timedelta(hours=1)))
TO = "Dr. Elena Rivera <E.Rivera@hospital.example>"
EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "example-digest.txt"


# ---------------------------------------------------------------- helpers


def message(
    subject: str = "Case log",
    text: str | None = "Hello",
    html: str | None = None,
    files: Sequence[tuple[str, bytes]] = (),
    **headers: str,
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Ana Lopez <ana@uni.example>"
    msg["To"] = headers.pop("to", TO)
    msg["Subject"] = subject
    msg["Date"] = "Fri, 28 Feb 2025 18:05:00 +0100"
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    if text is not None:
        msg.set_content(text)
    if html is not None:
        if text is None:
            msg.set_content(html, subtype="html")
        else:
            msg.add_alternative(html, subtype="html")
    for name, data in files:
        msg.add_attachment(data, maintype="application", subtype="pdf", filename=name)
    return msg


def original(msg: Message | bytes, key: str = "k") -> Original:
    return Original(key, msg if isinstance(msg, bytes) else msg.as_bytes())


def digest(*originals: Original, **kwargs: Any) -> list[EmailMessage]:
    args: dict[str, Any] = {
        "student_name": "Ana Lopez",
        "student_address": "ana@uni.example",
        "mentor_name": "Dr. Rivera",
        "now": NOW,
        "domain": "uni.example",
    }
    args.update(kwargs)
    return compose(list(originals), **args)


def reparse(msg: EmailMessage) -> EmailMessage:
    """Serialise and parse back as a mail client would; fail on any defect or 8-bit byte."""
    data = msg.as_bytes()
    assert data.isascii()
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    for part in parsed.walk():
        assert not part.defects, (part.get_content_type(), part.defects)
        for name, value in part.items():
            assert not getattr(value, "defects", ()), (name, value)
    return parsed


def only(msgs: list[EmailMessage]) -> EmailMessage:
    assert len(msgs) == 1
    return reparse(msgs[0])


def body(parsed: EmailMessage, kind: str = "plain") -> str:
    part = parsed.get_body((kind,))
    assert part is not None, f"no text/{kind} part"
    content = part.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")  # the digest is wire-ready (CRLF); compare as text


def files(parsed: EmailMessage) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for part in parsed.walk():
        name = part.get_filename()
        if name is not None:
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            found[name] = payload
    return found


def norm(text: str) -> str:
    return " ".join(text.split())


class TagAudit(HTMLParser):
    """Record tags and attributes, and check that every closing tag matches the innermost open one."""

    VOID = frozenset({"br", "hr", "img", "meta", "col", "wbr"})

    def __init__(self, markup: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str]] = []
        self.stack: list[str] = []
        self.text: list[str] = []
        self.feed(markup)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += [(name, value or "") for name, value in attrs]
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, (tag, self.stack)
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


SAFE_TAGS = frozenset(  # written out again here: the test is the second opinion on the allow-list
    {
        "a",
        "abbr",
        "b",
        "blockquote",
        "br",
        "caption",
        "center",
        "cite",
        "code",
        "col",
        "colgroup",
        "dd",
        "del",
        "dfn",
        "div",
        "dl",
        "dt",
        "em",
        "font",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "i",
        "img",
        "ins",
        "kbd",
        "li",
        "mark",
        "ol",
        "p",
        "pre",
        "q",
        "s",
        "samp",
        "small",
        "span",
        "strike",
        "strong",
        "sub",
        "sup",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "tt",
        "u",
        "ul",
        "var",
    }
)


def assert_safe(fragment: str) -> TagAudit:
    audit = TagAudit(fragment)
    assert set(audit.tags) <= SAFE_TAGS, set(audit.tags) - SAFE_TAGS
    assert not audit.stack
    for name, value in audit.attrs:
        assert not name.startswith("on")
        compact = re.sub(r"[\x00-\x20]", "", value).lower()
        assert not compact.startswith(("javascript:", "vbscript:", "data:"))
        if name == "src":
            assert compact.startswith("cid:")
    return audit


# ---------------------------------------------------------------- the digest as a mentor sees it


def test_text_only_digest_lists_contents_then_each_message_in_order() -> None:
    parsed = only(
        digest(
            original(message("Re: Case log week 12", "Twelve cases.\nOne question.")),
            original(message("Poster draft", "Draft attached soon.")),
            original(message("Fwd: Clinic on Friday", "Can I join?")),
        )
    )
    assert parsed.get_content_type() == "text/plain"
    text = body(parsed)
    contents = text.index("1. Re: Case log week 12"), text.index("2. Poster draft"), text.index("3. Fwd: Clinic")
    sections = [text.index(t) for t in ("Twelve cases.\nOne question.", "Draft attached soon.", "Can I join?")]
    assert list(contents) == sorted(contents) and contents[-1] < sections[0]
    assert sections == sorted(sections)
    assert "Written Fri 28 Feb 2025, 18:05" in text
    assert str(parsed["Subject"]) == "3 updates from Ana — Case log week 12, Poster draft, Clinic on Friday"


def test_headers_from_reply_to_to_cc_date_message_id() -> None:
    msg = message(cc="Nurse Kim <KIM@hospital.example>, chief@hospital.example")
    parsed = only(digest(original(msg)))
    assert str(parsed["From"]) == str(parsed["Reply-To"]) == "Ana Lopez <ana@uni.example>"
    assert [a.addr_spec for a in parsed["To"].addresses] == ["E.Rivera@hospital.example"]
    assert parsed["To"].addresses[0].display_name == "Dr. Elena Rivera"
    assert {a.addr_spec for a in parsed["Cc"].addresses} == {"KIM@hospital.example", "chief@hospital.example"}
    assert parsed["Date"].datetime == NOW
    assert re.fullmatch(r"<[^@<>\s]+@uni\.example>", str(parsed["Message-ID"]))
    assert parsed["MIME-Version"] == "1.0"


def test_bcc_goes_to_the_envelope_never_into_a_header() -> None:
    msgs = [original(message(bcc="Secret <Dean@uni.example>")), original(message("Two", bcc="dean@uni.example"))]
    out = digest(*msgs)
    raw = out[0].as_bytes()
    assert b"bcc" not in raw.lower() and b"dean@" not in raw.lower()
    assert envelope_recipients(msgs) == ["e.rivera@hospital.example", "dean@uni.example"]


def test_references_are_the_union_of_the_threads_continued() -> None:
    first = message(in_reply_to="<a@x>", references="<root@x> <a@x>")
    second = message("Two", in_reply_to="<b@y>", references="<root@x> <b@y>").as_bytes()
    folded = second.replace(b"<root@x> <b@y>", b"<root@x>\r\n\t<b@y>")
    parsed = only(digest(original(first), original(folded), original(message("Three"))))
    assert str(parsed["References"]).split() == ["<root@x>", "<a@x>", "<b@y>"]
    assert parsed["In-Reply-To"] is None


def test_same_message_ids_give_the_same_digest_message_id_and_now_changes_it() -> None:
    first = digest(original(message(), "k1"))[0]
    again = digest(original(message(), "k1"))[0]
    later = digest(original(message(), "k1"), now=NOW + timedelta(minutes=1))[0]
    assert first["Message-ID"] == again["Message-ID"] != later["Message-ID"]


def test_html_alternative_is_sanitised_and_keeps_formatting() -> None:
    dirty = (
        "<html><head><style>p{color:red}</style><title>t</title><script>steal()</script></head>"
        '<body onload="x()"><p class="a" style="background:url(http://t/p)">Dear <b>Dr</b> <i>Rivera</i>,'
        '<a href="https://uni.example/poster" onclick="x()">poster</a> <a href="jav&#x09;ascript:alert(1)">bad</a>'
        '<img src="http://tracker.example/p.gif" alt="pixel"><img src="data:image/png;base64,AAAA"></p>'
        "<ul><li>one</li><li>two</ul><table><tr><td>cell</td></tr></table>"
        '<iframe src="http://x">framed</iframe><object>obj</object><embed src="x"><form action="http://x">'
        "<input name=q>kept form text</form><svg><script>alert(2)</script></svg></body></html>"
    )
    parsed = only(digest(original(message("Poster", "Dear Dr Rivera, poster", dirty)), original(message("Plain"))))
    assert parsed.get_content_type() == "multipart/alternative"
    page = body(parsed, "html")
    audit = TagAudit(page)
    assert not audit.stack
    assert {"script", "style", "iframe", "object", "embed", "form", "input", "svg"}.isdisjoint(audit.tags)
    assert {"b", "i", "a", "ul", "li", "table", "td", "pre"} <= set(audit.tags)
    assert ("href", "https://uni.example/poster") in audit.attrs
    assert all(not n.startswith("on") and "javascript" not in v and "http://t" not in v for n, v in audit.attrs)
    assert "src" not in dict(audit.attrs)
    visible = norm(" ".join(audit.text))
    assert "[image: pixel]" in visible and "kept form text" in visible
    assert "steal" not in page and "alert" not in page and "framed" not in page and "p{color" not in page
    assert "Dear Dr Rivera, poster" in body(parsed)  # the original's own text/plain is used for the text view


def test_html_only_original_gets_a_readable_text_rendering() -> None:
    markup = (
        "<h1>Update</h1><p>Two &amp; three&nbsp;items:</p><ul><li>First</li><li>Second</li></ul>"
        '<p>See <a href="https://uni.example/x">the notes</a>.</p><script>no()</script>'
    )
    parsed = only(digest(original(message("Update", None, markup))))
    text = body(parsed)
    assert "Update\n\nTwo & three\xa0items:\n\n- First\n- Second\n\nSee the notes <https://uni.example/x>." in text
    assert "no()" not in text
    assert "<h1>Update</h1>" in body(parsed, "html")


def test_plain_text_original_is_escaped_in_the_html_view() -> None:
    parsed = only(digest(original(message("A", "if a < b && c > d: <script>")), original(message("B", None, "<p>x"))))
    page = body(parsed, "html")
    assert "if a &lt; b &amp;&amp; c &gt; d: &lt;script&gt;" in page
    assert "script" not in TagAudit(page).tags


def raw_text_mail(payload: bytes, content_type: str, cte: str = "8bit", subject: bytes = b"Charset") -> Original:
    head = b"From: ana@uni.example\r\nTo: " + TO.encode() + b"\r\nSubject: " + subject + b"\r\nMIME-Version: 1.0\r\n"
    head += b"Content-Type: " + content_type.encode() + b"\r\nContent-Transfer-Encoding: " + cte.encode() + b"\r\n"
    return Original("raw", head + b"\r\n" + payload + b"\r\n")


@pytest.mark.parametrize(
    ("payload", "content_type", "expected"),
    [
        ("Grüße, café".encode(), 'text/plain; charset="utf-8"', "Grüße, café"),
        ("Grüße, café".encode("latin-1"), "text/plain; charset=iso-8859-1", "Grüße, café"),
        ("Preis 5 €".encode("iso-8859-15"), "text/plain; charset=iso-8859-15", "Preis 5 €"),
        ("“quoted” – dash".encode("cp1252"), "text/plain; charset=windows-1252", "“quoted” – dash"),
        ("“smart” quotes".encode("cp1252"), "text/plain; charset=iso-8859-1", "“smart” quotes"),  # as mailers do
        ("naïve café".encode("latin-1"), "text/plain", "naïve café"),  # 8-bit, no charset
        ("naïve café".encode("latin-1"), "text/plain; charset=utf-8", "naïve café"),  # wrong charset
        ("naïve café".encode(), "text/plain; charset=x-unknown-8bit", "naïve café"),  # unknown charset
        ("Größe".encode() + b" \xff\xfe junk", "text/plain; charset=utf-8", "Größe \ufffd\ufffd junk"),
        ("<p>Grüße &amp; café</p>".encode("latin-1"), "text/html; charset=latin1", "Grüße & café"),
    ],
)
def test_character_sets_come_out_as_utf8_text(payload: bytes, content_type: str, expected: str) -> None:
    parsed = only(digest(raw_text_mail(payload, content_type)))
    assert expected in body(parsed)


def test_8bit_and_encoded_subjects_are_decoded() -> None:
    mails = [
        raw_text_mail(b"x", "text/plain", subject="Grüße aus der Klinik".encode("latin-1")),
        raw_text_mail(b"y", "text/plain", subject=b"=?utf-8?q?Fr=C3=BChst=C3=BCck?= =?bogus?q?x?="),
        raw_text_mail(b"z", "text/plain", subject=b"=?utf-8?b?!!notbase64?="),
    ]
    parsed = only(digest(*mails))
    assert str(parsed["Subject"]).startswith("3 updates from Ana — Grüße aus der Klinik, Frühstück")


def test_attachments_keep_bytes_and_same_names_stay_distinct() -> None:
    a, b, c = b"%PDF-1.4 first", b"%PDF-1.4 second", bytes(range(256))
    parsed = only(
        digest(
            original(message("One", files=[("notes.pdf", a)])),
            original(message("Two", files=[("Notes.pdf", b), ("Prüfung ünd “Plan”.pdf", c)])),
        )
    )
    assert files(parsed) == {"notes.pdf": a, "Notes (2).pdf": b, "Prüfung ünd “Plan”.pdf": c}
    text = body(parsed)
    assert "Attached: notes.pdf" in text and "Attached: Notes (2).pdf, Prüfung ünd “Plan”.pdf" in text


def test_unnamed_and_path_like_attachments_get_safe_names() -> None:
    msg = message()
    msg.add_attachment(b"\x89PNG data", maintype="image", subtype="png")
    msg.add_attachment(b"secret", maintype="application", subtype="octet-stream", filename="../../etc/passwd")
    assert set(files(only(digest(original(msg))))) == {"attachment-1.png", "passwd"}


def test_inline_cid_images_travel_with_the_html() -> None:
    logo = b"\x89PNG\r\n\x1a\n logo bytes"
    msg = message("Logo", "see logo", '<p>Logo: <img src="cid:logo@ana" alt="logo"></p>')
    html_part = msg.get_body(("html",))
    assert isinstance(html_part, EmailMessage)
    html_part.add_related(logo, "image", "png", cid="<logo@ana>", filename="logo.png")
    parsed = only(digest(original(msg), original(message("Same cid elsewhere", None, '<img src="cid:logo@ana">'))))
    sources = [v for n, v in TagAudit(body(parsed, "html")).attrs if n == "src"]
    assert len(sources) == 1 and sources[0].startswith("cid:") and sources[0] != "cid:logo@ana"
    related = [p for p in parsed.walk() if p["Content-ID"] == f"<{sources[0][4:]}>"]
    assert len(related) == 1 and related[0].get_payload(decode=True) == logo


def test_forwarded_message_is_shown_inline() -> None:
    inner = message("Lab results", "Potassium 4.1", to="ana@uni.example")
    outer = message("Fwd: Lab results", "FYI below")
    outer.add_attachment(inner)
    text = body(only(digest(original(outer))))
    assert "FYI below" in text and "Forwarded message" in text and "Subject: Lab results" in text
    assert "Potassium 4.1" in text


def test_format_flowed_is_joined() -> None:
    flowed = raw_text_mail(b"This line is \r\nsoft wrapped.\r\n-- \r\nAna", "text/plain; format=flowed")
    assert "This line is soft wrapped.\n-- \nAna" in body(only(digest(flowed)))


@pytest.mark.parametrize(
    "raw",
    [
        b"To: " + TO.encode() + b"\r\nSubject: no boundary\r\nContent-Type: multipart/mixed\r\n\r\n--x\r\nbody\r\n",
        b"To: " + TO.encode() + b"\r\nSubject: bad b64\r\nContent-Type: application/pdf; name=a.pdf\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n!!!not base64===\r\n",
        b"To: " + TO.encode() + b'\r\nSubject: cut\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
        b"Content-Type: text/plain\r\n\r\ncut in the mid",
        b"To: " + TO.encode() + b"\r\nSubject: \xff\xfe\r\nContent-Type: text/plain; charset*=bogus''%ZZ\r\n\r\nx",
        b"To: " + TO.encode() + b"\r\nContent-Type: message/rfc822\r\n\r\n",
        b"",
    ],
)
def test_broken_mime_never_crashes_and_still_makes_a_clean_digest(raw: bytes) -> None:
    to = raw.split(b"\r\n", 1)[0] + b"\r\n" if raw else b""
    parsed = only(digest(Original("broken", raw), Original("ok", to + b"Subject: fine\r\n\r\nfine text")))
    assert "fine text" in body(parsed)


def test_multipart_without_boundary_is_noted_and_attached() -> None:
    raw = b"To: " + TO.encode() + b"\r\nSubject: nb\r\nContent-Type: multipart/mixed\r\n\r\nwhat was there\r\n"
    parsed = only(digest(Original("nb", raw)))
    assert "could not be read" in body(parsed)
    assert files(parsed) == {"unreadable-part.txt": b"what was there\r\n"}


# ---------------------------------------------------------------- subject and header injection


def test_subject_topics_strip_prefixes_shorten_and_count_the_rest() -> None:
    subjects = [
        "RE: Re: Fwd: Case log",
        "AW: Case log",
        "A very long subject about the poster we discussed in clinic",
        "Third",
        "Fourth topic",
        "Fifth",
    ]
    parsed = only(digest(*(original(message(s)) for s in subjects), subject_template="{topics}"))
    assert str(parsed["Subject"]) == "Case log, A very long subject about the poster we…, Third and 2 more"


def test_subject_template_with_mentor_and_count() -> None:
    out = digest(original(message()), subject_template="For {mentor}: {count:02d} from {student}")
    assert out[0]["Subject"] == "For Dr. Rivera: 01 from Ana"


@pytest.mark.parametrize("template", ["{count} {unknown}", "{0}", "{}", "{student.upper}", "{count", "{topics!z}"])
def test_bad_subject_template_is_a_clear_value_error(template: str) -> None:
    with pytest.raises(ValueError, match="subject_template"):
        digest(original(message()), subject_template=template)


def test_crlf_in_names_and_subjects_cannot_make_headers() -> None:
    evil_subject = b"=?utf-8?q?Hi=0D=0ABcc:_victim@evil.example?="
    out = digest(
        raw_text_mail(b"x", "text/plain", subject=evil_subject),
        student_name="Ana\r\nBcc: victim@evil.example",
        mentor_name="R\nX-Evil: 1",
        subject_template="{mentor}\r\nX-Evil: 2 {topics}",
    )
    parsed = only(out)
    assert parsed["Bcc"] is None and parsed["X-Evil"] is None
    assert "\n" not in str(parsed["Subject"]) and "\n" not in str(parsed["From"])
    assert parsed["From"].addresses[0].addr_spec == "ana@uni.example"
    assert b"\nbcc:" not in parsed.as_bytes().lower()


# ---------------------------------------------------------------- size split


def test_size_split_keeps_order_and_titles_the_parts() -> None:
    big = [
        original(message(f"Part {i}", f"text {i}", files=[(f"f{i}.pdf", bytes([i]) * 300_000)]), f"k{i}")
        for i in range(5)
    ]
    out = digest(*big, max_bytes=900_000)
    assert len(out) == 3
    sizes = [len(m.as_bytes()) for m in out]
    assert all(size <= 900_000 for size in sizes)
    parsed = [reparse(m) for m in out]
    assert [str(p["Subject"]).rsplit(" ", 1)[1] for p in parsed] == ["(1/3)", "(2/3)", "(3/3)"]
    found = [name for p in parsed for name in files(p)]
    assert found == [f"f{i}.pdf" for i in range(5)]
    assert len({p["Message-ID"] for p in parsed}) == 3
    assert "part 1 of 3" in body(parsed[0])


def test_one_original_larger_than_the_limit_still_goes_alone() -> None:
    out = digest(original(message(files=[("big.pdf", b"x" * 50_000)])), max_bytes=10_000)
    assert len(out) == 1 and "(1/" not in str(out[0]["Subject"])


# ---------------------------------------------------------------- rules for merging


def test_compose_refuses_empty_mixed_recipients_and_naive_now() -> None:
    with pytest.raises(ValueError, match="at least one"):
        compose([], student_name="A", student_address="a@b.c", mentor_name="M", now=NOW, domain="b.c")
    with pytest.raises(ValueError, match="different To/Cc/Bcc"):
        digest(original(message(), "k1"), original(message(to="other@hospital.example"), "k2"))
    with pytest.raises(ValueError, match="timezone"):
        digest(original(message()), now=datetime(2025, 3, 3, 9, 0))
    with pytest.raises(ValueError, match="student_address"):
        digest(original(message()), student_address="not an address")
    with pytest.raises(ValueError, match="domain"):
        digest(original(message()), domain="bad domain>")


def test_compatibility_key_ignores_order_case_and_names_but_not_roles() -> None:
    base = compatibility_key(b"To: A <a@x.org>, b@Y.org\r\nCc: c@z.org\r\n\r\n")
    assert base == compatibility_key(b"To: b@y.org, =?utf-8?q?Andr=C3=A9?= <A@X.ORG>\r\nCc: C@z.org\r\n")
    assert base != compatibility_key(b"To: a@x.org\r\nCc: b@y.org, c@z.org\r\n")
    assert base != compatibility_key(b"To: a@x.org, b@y.org\r\nCc: c@z.org\r\nBcc: d@w.org\r\n")
    assert base == compatibility_key(b"To: a@x.org\r\nTo: b@y.org\r\nCc: c@z.org\r\nSubject: x\r\n\r\nbody")


def test_thread_replies_to_the_mentor_are_recognised() -> None:
    mentor_ids = {"<m1@hospital.example>", "M2@hospital.example"}
    assert is_thread_reply(b"In-Reply-To: <m1@hospital.example>\r\n", mentor_ids)
    assert is_thread_reply(b"References: <s1@uni>\r\n <m2@hospital.example>\r\n\r\nbody", mentor_ids)
    assert not is_thread_reply(b"In-Reply-To: <s1@uni>\r\nReferences: <s0@uni>\r\n", mentor_ids)
    assert not is_thread_reply(b"Subject: new\r\n", mentor_ids)


# ---------------------------------------------------------------- the text helpers on their own


def test_decode_bytes_falls_back_without_raising() -> None:
    assert decode_bytes(b"caf\xc3\xa9", None) == "café"
    assert decode_bytes(b"caf\xe9", "utf-8") == "café"
    assert decode_bytes(b"\x81\x8d", "windows-1252") == "\x81\x8d"
    assert decode_bytes("ça".encode("utf-16"), "utf-16") == "ça"


def test_html_to_text_keeps_pre_and_skips_head() -> None:
    assert html_to_text("<head><title>T</title></head><pre>a   b\n c</pre><p>x   y</p>") == "a   b\n c\n\nx y"


# ---------------------------------------------------------------- the example in the docs


def example_originals() -> list[Original]:
    first = message(
        "Re: Case log, week 12",
        "Dear Dr. Rivera,\n\nTwelve cases this week, all logged.\n\nAna",
        in_reply_to="<case-log-11@uni.example>",
        references="<case-log-11@uni.example>",
    )
    second = message(
        "Poster draft for the research day",
        "Dear Dr. Rivera,\n\nThe draft is attached; the methods box is still rough.\n\nAna",
        files=[("poster-draft.pdf", b"%PDF-1.4 example")],
    )
    third = message(
        "Question about Friday's clinic",
        None,
        "<p>Dear Dr. Rivera,</p><p>May I join the <b>Friday</b> clinic?</p><ul><li>08:00 start</li>"
        "<li>I can stay until 16:00</li></ul><p>Ana</p>",
    )
    return [Original("1", first.as_bytes()), Original("2", second.as_bytes()), Original("3", third.as_bytes())]


def render_example() -> str:
    parsed = only(digest(*example_originals()))
    names = ("From", "To", "Subject", "Date", "Message-ID", "References")
    head = "".join(f"{name}: {parsed[name]}\n" for name in names)
    return head + "\n" + body(parsed)


def test_docs_example_is_what_compose_writes() -> None:
    expected = render_example()
    assert EXAMPLE.read_text(encoding="utf-8") == expected, "regenerate docs/example-digest.txt from render_example()"


# ---------------------------------------------------------------- Hypothesis: random MIME trees

CHARSETS = ["utf-8", "iso-8859-1", "iso-8859-15", "windows-1252", "us-ascii"]
WORDS = st.text(st.characters(categories=["L", "N", "P", "Zs", "S"]), min_size=1, max_size=40)


def encodable(text: str, charset: str) -> str:
    return "".join(ch for ch in text if ch.encode(charset, errors="ignore"))


@st.composite
def texts(draw: st.DrawFn) -> tuple[str, str]:
    charset = draw(st.sampled_from(CHARSETS))
    words = [encodable(w, charset) for w in draw(st.lists(WORDS, min_size=1, max_size=6))]
    return charset, "\n".join(w for w in words if w.strip()) or "x"


def text_part(charset: str, text: str, subtype: str = "plain") -> EmailMessage:
    part = EmailMessage()
    if subtype == "html":
        text = "<p>" + "<br>".join(_escape(line) for line in text.split("\n")) + "</p>"
    part.set_content(text, subtype=subtype, charset=charset)
    return part


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@st.composite
def junk_part(draw: st.DrawFn) -> tuple[EmailMessage, str]:
    """Latin-1 bytes labelled as UTF-8 or with no charset: must still read as the intended text."""
    text = draw(st.text(st.sampled_from("abc xyz¡¢£¥§©«®°±²µ¶»¿"), min_size=1, max_size=30))
    part = EmailMessage()
    params = draw(st.sampled_from([{"charset": "utf-8"}, {}]))
    cte = draw(st.sampled_from(["8bit", "base64", "quoted-printable"]))
    part.set_content(text.encode("latin-1"), "text", "plain", cte=cte, params=params)
    return part, text


NAMES = st.text(st.sampled_from("abcdefABC123 ._-()éü€'\"/\\;="), max_size=24)
TYPES = st.sampled_from([("application", "pdf"), ("image", "png"), ("application", "octet-stream"), ("text", "csv")])


@st.composite
def attachment(draw: st.DrawFn) -> tuple[EmailMessage, bytes]:
    data = draw(st.binary(max_size=600))
    maintype, subtype = draw(TYPES)
    part = EmailMessage()
    name = draw(st.one_of(st.none(), NAMES))
    part.set_content(data, maintype, subtype, disposition="attachment", filename=name)
    return part, data


Tree = tuple[EmailMessage, list[str], list[bytes]]


@st.composite
def leaf(draw: st.DrawFn) -> Tree:
    kind = draw(st.sampled_from(["plain", "html", "alternative", "junk", "file"]))
    if kind == "file":
        part, data = draw(attachment())
        return part, [], [data]
    if kind == "junk":
        part, text = draw(junk_part())
        return part, [text], []
    charset, text = draw(texts())
    if kind != "alternative":
        return text_part(charset, text, kind), [text], []
    alt = EmailMessage()
    alt.make_alternative()
    alt.attach(text_part(charset, text))
    rich = text_part(charset, text, "html")
    files_: list[bytes] = []
    if draw(st.booleans()):
        image, data = draw(attachment())
        rich.make_related()
        rich.attach(image)
        files_.append(data)
    alt.attach(rich)
    return alt, [text], files_


def mixed(children: list[Tree]) -> Tree:
    node = EmailMessage()
    node.make_mixed()
    for child, _, _ in children:
        node.attach(child)
    return node, [t for _, ts, _ in children for t in ts], [d for _, _, ds in children for d in ds]


trees = st.recursive(leaf(), lambda inner: st.lists(inner, min_size=1, max_size=3).map(mixed), max_leaves=8)


def as_original(tree: Tree, index: int) -> Original:
    msg = tree[0]
    msg["To"] = TO
    msg["Subject"] = f"Message {index}"
    return Original(str(index), msg.as_bytes())


@given(st.lists(trees, min_size=1, max_size=4))
def test_random_mime_trees_keep_every_text_and_every_file(forest: list[Tree]) -> None:
    parsed = only(digest(*(as_original(tree, i) for i, tree in enumerate(forest))))
    plain = norm(body(parsed))
    for _, expected_texts, _ in forest:
        for text in expected_texts:
            assert norm(text) in plain
    carried = [p.get_payload(decode=True) for p in parsed.walk() if p.get_filename() is not None]
    for _, _, datas in forest:
        for data in datas:
            assert data in carried
            carried.remove(data)
    names = [p.get_filename() or "" for p in parsed.walk() if p.get_filename() is not None]
    assert len({n.lower() for n in names}) == len(names)
    if parsed.get_body(("html",)) is not None:
        audit = TagAudit(body(parsed, "html"))
        assert not audit.stack and "script" not in audit.tags


@given(trees, st.data())
def test_damaged_bytes_never_crash_and_still_parse(tree: Tree, data: st.DataObject) -> None:
    raw = bytearray(as_original(tree, 0).raw)
    for _ in range(data.draw(st.integers(0, 8))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(len(raw) // 3, len(raw)))
    only(digest(Original("damaged", bytes(raw[:cut]))))


@given(st.binary(max_size=400))
def test_any_bytes_at_all_make_a_clean_digest(raw: bytes) -> None:
    parsed = only(digest(Original("junk", raw), student_name=""))
    assert body(parsed).startswith("1 message from ana@uni.example")


FRAGMENTS = st.sampled_from(
    [
        "<script>alert(1)</script>",
        "<SCRIPT SRC=//x>",
        "<img src=x onerror=alert(1)>",
        '<a href="javascript:x">j</a>',
        "<a href=' jAvA\tscript:x'>k</a>",
        "<p>",
        "</p>",
        "<b>",
        "</i>",
        "text & more",
        "<!-- <script> -->",
        "<style>",
        "</style>",
        "<svg onload=x>",
        "<iframe src=http://x>",
        "<table><tr><td>",
        "</td>",
        "<li>",
        "&lt;script&gt;",
        '<img src="cid:a" alt="a">',
        '<img src="http://t/x.gif">',
        "<math><mi>x</mi></math>",
        "<a href=https://ok>ok</a>",
        "<div style='background:url(http://t)'>",
        "</div>",
        "<br/>",
        "<form><input value=x></form>",
        "<",
        ">",
        "<p x='",
    ]
)


@given(st.lists(FRAGMENTS, max_size=25).map("".join))
def test_sanitiser_output_is_balanced_and_harmless(markup: str) -> None:
    out = sanitise_html(markup, lambda cid: "new" if cid == "a" else None)
    assert_safe(out)
    assert "<script" not in out.lower()  # unparsed markup may survive, but only as escaped text
