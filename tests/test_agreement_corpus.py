"""Her answer to the proposal, read so that its errors are safe: a corpus of answers as real clients write them
(tests/corpus/agreement_answers, each with its expected reading in manifest.toml), read from bytes through the
daemon's path, and the properties: a numbered value she wrote is never read as "as proposed", negated consent
is never consent."""

from __future__ import annotations

import html
import tomllib
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.rules.agreement import Standard, draft_body, read_value, say_value, standards
from agent.rules.agreement_answer import WORDS_LIMIT, read_answer, read_reply, same
from agent.rules.own_lines import reply_text, reply_texts
from agent.rules.policy import load_policy

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "corpus" / "agreement_answers"
MANIFEST: dict[str, dict[str, Any]] = tomllib.loads((CORPUS / "manifest.toml").read_text(encoding="utf-8"))["answers"]
RIVERA = load_policy(ROOT / "policies" / "rivera.toml").policy
PROPOSED = standards(RIVERA)
BODY = draft_body(RIVERA, "Sam Patel")
NAMES = (RIVERA.mentor.name, "Sam Patel")  # hers and the student's: the daemon passes both


def test_the_corpus_is_large_varied_and_every_file_has_its_reading() -> None:
    files = sorted(path.name for path in CORPUS.glob("*.eml"))
    assert files == sorted(MANIFEST) and len(files) >= 40
    clients = {entry["client"].split()[0] for entry in MANIFEST.values()}
    assert {"Gmail", "Outlook", "Apple", "iPhone", "Thunderbird"} <= clients
    assert sum("HTML only" in entry["client"] for entry in MANIFEST.values()) >= 5
    assert {entry["outcome"] for entry in MANIFEST.values()} == {"accepted", "changed", "unclear"}


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_each_answer_reads_as_expected(name: str) -> None:
    expected = MANIFEST[name]
    answer = read_reply(reply_texts((CORPUS / name).read_bytes()), PROPOSED, names=NAMES)  # as the daemon reads
    assert (answer.outcome, {c.standard.path: c.toml for c in answer.changes}) == (
        expected["outcome"],
        expected.get("changes", {}),
    ), answer.problems
    if answer.outcome == "unclear":
        assert answer.problems  # the notice says why
    # her words are quoted to the student: never the proposal she quotes
    assert "Thank you for mentoring me" not in answer.words and "mentor-agent" not in answer.words
    assert "Sent from my iPhone" not in answer.words


# -- the properties ----------------------------------------------------------------------------------------------

YES = ["Fine.", "Fine by me!", "Agreed.", "OK, all good.", "Sounds good.", "Yes, perfect.", "Happy with this."]
STYLES = [
    "{n}. {v}",
    "{n}: {v}",
    "Fine, but {n}. {v}",
    "Yes, fine — but {n}. {v}",
    "#{n}: {v}",
    "item {n} → {v}",
    "Fine except {n}. {v}, thanks",
    "All good; {n}) {v}",
    "Looks good. No. {n} - {v} please.",
]
QUOTING = [
    lambda body: "\n".join(f"> {line}" if line else ">" for line in body.splitlines()),
    lambda body: (
        "On Mon, 23 Nov 2026 at 08:00, Sam Patel <sam@med.example.edu> wrote:\n"
        + "\n".join(f"> {line}" for line in body.splitlines())
    ),
    lambda body: "-----Original Message-----\nFrom: Sam Patel\nSent: Monday\n\n" + body,
    lambda body: "________________________________\nFrom: Sam Patel <sam@med.example.edu>\n\n" + body,
]
COUNTS = st.integers(min_value=1, max_value=40)
DURATIONS = st.sampled_from(["45 minutes", "2 hours", "3 days", "48 hours", "1 week", "90 minutes", "10 days"])
WINDOWS = st.sampled_from(["Mon-Thu 09:00-16:00", "Tue 10:00-12:00", "Mon, Wed 08:00-10:00"])


def value_for(standard: Standard) -> st.SearchStrategy[str]:
    if standard.kind == "windows":
        return WINDOWS
    if standard.kind == "duration":
        return DURATIONS
    return COUNTS.map(str)


@st.composite
def answers_with_a_value(draw: st.DrawFn) -> tuple[str, Standard, str]:
    standard = draw(st.sampled_from(PROPOSED))
    # a value other than the proposed one (restating the proposed value is agreeing to it)
    value = draw(
        value_for(standard).filter(lambda v: not same(standard.kind, read_value(standard.kind, v), standard.value))
    )
    line = draw(st.sampled_from(STYLES)).format(n=standard.number, v=value)
    opening = draw(st.sampled_from(["", *YES]))
    closing = draw(st.sampled_from(["", "Ana", "Best,\nAna", "Thanks!\n\nSent from my iPhone"]))
    quoting = draw(st.sampled_from(QUOTING))
    text = "\n\n".join(part for part in (opening, line, closing) if part) + "\n\n" + quoting(BODY)
    return text, standard, value


@given(answers_with_a_value())
def test_a_numbered_value_is_never_as_proposed(case: tuple[str, Standard, str]) -> None:
    text, standard, value = case
    answer = read_answer(text, PROPOSED, names=NAMES)
    assert answer.outcome != "accepted", text
    if answer.outcome == "changed":  # read: then exactly as she wrote it
        (change,) = answer.changes
        assert change.standard.number == standard.number
        assert say_value(standard.kind, change.value) == say_value(
            standard.kind, read_answer(f"{standard.number}. {value}", PROPOSED).changes[0].value
        )


NEGATIONS = [
    "Not {y}",
    "This is not {y} with me, sorry.",
    "I don't think this is {y}",
    "It isn't {y} for me.",
    "No, not {y}.",
    "I can't say it's {y}.",
    "{y}? Not really.",
    "I'm afraid it's not {y}.",
    "Never {y} for me, let us talk first.",
    "{Y}, if you keep them short.",
    "{Y} unless rounds get in the way.",
    "{Y}, but not the meetings.",
    "Is this {y}?",
]
CONSENT = ["fine", "ok", "okay", "good", "agreed", "acceptable", "great", "perfect", "all good", "sounds good"]


def html_only(own: str) -> str:
    """``own`` as Gmail sends it in HTML only, the proposal in a blockquote, read from the message's bytes."""
    message = EmailMessage()
    message["From"], message["Subject"] = "Ana Rivera <arivera@hospital.example.org>", "Re: proposal"
    quoted = "<br>".join(html.escape(line) for line in BODY.splitlines())
    message.set_content(
        f'<div dir="ltr">{html.escape(own)}<br><br>Ana</div><div class="gmail_quote"><blockquote>{quoted}'
        "</blockquote></div>",
        subtype="html",
    )
    return reply_text(message.as_bytes())


@given(st.sampled_from(NEGATIONS), st.sampled_from(CONSENT), st.sampled_from(QUOTING), st.booleans())
def test_negated_or_conditional_consent_is_never_consent(template: str, word: str, quoting: Any, as_html: bool) -> None:
    own = template.format(y=word, Y=word.capitalize())
    text = html_only(own) if as_html else own + "\n\nAna\n\n" + quoting(BODY)
    answer = read_answer(text, PROPOSED, names=NAMES)
    assert answer.outcome == "unclear" and answer.problems and own in answer.words


def test_the_notice_quotes_her_own_lines_within_bounds() -> None:
    long = "\n".join(f"Paragraph {n}: we should discuss this." for n in range(60))
    answer = read_answer("Not fine.\n\n" + long + "\n\n> 1. E-mails from me in a week, at most: 3\n", PROPOSED)
    lines = answer.words.split("\n")
    assert answer.outcome == "unclear" and lines[0] == "Not fine." and lines[-1] == "[…]"
    assert len(lines) <= WORDS_LIMIT[0] + 1 and len(answer.words) <= WORDS_LIMIT[1] + 80
    assert "E-mails from me" not in answer.words


@pytest.mark.parametrize(
    "line",
    [
        "7. 45 minutes or 1 hour",
        "7. 30-45 minutes",
        "1. 2-3",
        "1. 2 or 3",
        "3. Mon to Fri 09:00-17:00",
        "3. Mon-Thu 09:00-16:00 or Fri 10:00-12:00",
        "7. 45 minutes instead of 30",
        "7. not 45 minutes",
    ],
)
def test_a_choice_a_range_or_a_negation_is_not_one_value(line: str) -> None:
    answer = read_answer(f"Fine, but {line}\n\nAna", PROPOSED)
    assert (answer.outcome, answer.changes) == ("unclear", ()) and answer.problems


def test_a_capitalised_word_is_not_taken_for_a_name_unless_it_is_one() -> None:
    assert read_answer("Fine, Zoom.\n\nAna", PROPOSED, names=NAMES).outcome == "unclear"
    assert read_answer("Fine, thank you Sam.\n\nAna", PROPOSED, names=NAMES).outcome == "accepted"
    assert read_answer("Fine, thank you Sam.", PROPOSED).outcome == "unclear"  # a name only when it is known
