"""A hostile reading of the mentor's answer (issue 20, the tester's findings): every doubt is "please read",
never "agreed" and never a wrong value that ``agree --apply`` would write. Pure."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import pytest

from agent.rules.agreement import standards
from agent.rules.agreement_answer import read_answer, read_reply
from agent.rules.own_lines import reply_text, reply_texts
from agent.rules.policy import load_policy

ROOT = Path(__file__).resolve().parent.parent
RIVERA = load_policy(ROOT / "policies" / "rivera.toml").policy
PROPOSED = standards(RIVERA)
NAMES = (RIVERA.mentor.name, "Sam Patel")
QUOTE = "On Mon, 7 Dec 2026 at 10:00, Sam Patel <sam@med.example.edu> wrote:\n"
UNCLEAR = "unclear"


def reading(text: str) -> object:
    answer = read_answer(text, PROPOSED, names=NAMES)
    if answer.outcome == "unclear":
        assert answer.problems  # the notice says why
        return UNCLEAR
    return answer.outcome, {c.standard.number: c.toml for c in answer.changes}


# -- 1. the words beside a value: the opposite, a relative change, a question, a condition ---------------------
@pytest.mark.parametrize(
    "text",
    [
        QUOTE + "> 8. When we can meet, your time: Tue 16:00-17:00, Thu 07:00-08:00\nThu 07:00-08:00 is too early\n",
        "Fine, but 8. Thu 07:00-08:00 is too early.",
        "All fine. 8. drop Thu 07:00-08:00",
        "Fine. 3. add Sat 10:00-12:00",
        "Fine. 7. 15 minutes longer",
        "Fine. 1. one more",
        "Fine. 12. 24 hours earlier",
        "Fine. 7. 45 minutes?",
        QUOTE + "> 7. A meeting lasts: 30 minutes\nCould we do 45 minutes?\n",
        "Fine. 7. 45 minutes, if possible",
        "Fine. 7. 45 minutes unless you need longer",
        "Fine, but 1. 2; urgent ones any time",
        "Fine, but 3. Mon-Fri 09:00-17:00 except August",
    ],
)
def test_a_value_with_other_words_beside_it_is_please_read(text: str) -> None:
    assert reading(text) == UNCLEAR


# -- 5. values the parser does not read completely --------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "Fine, but 5. 3 days and 12 hours and a bit",
        "Fine, but 7. an hour and a half",
        "Fine, but 7. half an hour",
        "Fine, but 12. three days and twelve hours",
        "Fine, but 14. a year and a half",
        "Fine, but 10. a week and a half",
        "Fine, but 5. 7 days 3 days",
        "Fine, but 1. 8 a month",
        "Fine, but 1. 2 a day",
        "Fine, but 1. 2½",
        "Fine, but 1. -2",
        "Fine, but 7. 1.5 hours",
        "Fine. I am free after 5. 30 minutes should do.",
        "Sounds good. I finish at 5. A week is fine for replies.",
        "Fine, but 8. Tue 16:00-17:00 Berlin time",
        "Fine, but 3. Mon-Fri 09:00-17:00 UTC",
        "Fine, but 6. never mind",
        "Fine, but 14. 6 months",  # a month is no fixed length: 180 days would be a guess
    ],
)
def test_a_value_not_read_completely_is_please_read(text: str) -> None:
    assert reading(text) == UNCLEAR


@pytest.mark.parametrize(
    ("text", "changes"),
    [
        ("Fine, but 7. 30 minutes -> 45 minutes", {7: "45m"}),
        ("Fine, but 5. 3 days and 12 hours", {5: "3d12h"}),
        ("Fine, but 7. 1 hour 30 minutes", {7: "1h30m"}),
        ("Fine, but 1. 2 a week", {1: 2}),
        ("Fine, but 2. 2 per day", {2: 2}),
        ("Fine, but 1. 2 e-mails please", {1: 2}),
        ("Fine, but 6. never", {6: 0}),
        ("Fine, but 8. Tue 16:00-17:00 and Thu 08:00-09:00", {8: ["Tue 16:00-17:00", "Thu 08:00-09:00"]}),
    ],
)
def test_a_value_read_completely_is_her_value(text: str, changes: dict[int, object]) -> None:
    assert reading(text) == ("changed", changes)


# -- 2. a partial answer with no yes to the rest -----------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "7. 45 minutes. Let me think about the rest.",
        "5. 3 days\n\nThe rest I would like to discuss first, let me think about it.",
        "7. 45 minutes\nFor the rest, please wait until I am back.",
        "7. 45 minutes. Zoom for the meetings.",
    ],
)
def test_a_change_with_words_that_are_not_a_yes_to_the_rest_is_please_read(text: str) -> None:
    assert reading(text) == UNCLEAR


@pytest.mark.parametrize(
    "text",
    [
        "7. 45 minutes",
        "7. 45 minutes\n\nThanks, Ana",
        "Fine, with these changes:\n7. 45 minutes",
        "Dear Sam,\n7. 45 minutes",
    ],
)
def test_a_change_beside_a_yes_or_only_greetings_is_read(text: str) -> None:
    assert reading(text) == ("changed", {7: "45m"})


# -- 4. and 8. a capitalised word is a name only when it is one; a hedge is not a yes ----------------------------
@pytest.mark.parametrize(
    "text",
    [
        "Fine. Fortnightly Please.",
        "Fine. Zoom.",
        "OK. Meh.",
        "Yes. Monthly Meetings.",
        "Fine, Sam. Dean Says Otherwise.",
        "Fine. Cant.",
        "Fine.\n\n" + QUOTE + "> 7. A meeting lasts: 30 minutes\nLonger\n",
        "Fine.\n\n" + QUOTE + "> 7. A meeting lasts: 30 minutes\nAn Hour\n",
        "Fine.\n\n" + QUOTE + "> 7. A meeting lasts: 30 minutes\n✗\n",
        "Kind of fine.",
        "Would be fine.",
        "Seems fine.",
        "Fine-ish.",
    ],
)
def test_unknown_capitalised_words_signs_and_hedges_are_please_read(text: str) -> None:
    assert reading(text) == UNCLEAR


@pytest.mark.parametrize(
    "text", ["Fine.\n\nAna", "Fine, thank you Sam.\n\nDr. Ana Rivera, MD", "Hi Sam,\nfine.\nA. R."]
)
def test_known_names_beside_a_yes_are_a_yes(text: str) -> None:
    assert reading(text) == ("accepted", {})


# -- 3. what follows a closing, "--", "From:" or "Sent from" is read unless it is a signature ---------------------
@pytest.mark.parametrize(
    "text",
    [
        "Fine.\nThanks!\nI can't do Thursdays at 7 am though, far too early.",
        "Looks good.\nThanks.\nWait, 8 does not work.",
        "Fine.\n\nBest,\nAna\n\nP.S. I cannot meet on Thursdays.",
        "Best,\nAna\n\nP.S. 7. 45 minutes, and I cannot meet on Thursdays.",
        "All fine.\nThank you,\nAna\nPS Actually, make 7 an hour.",
        "Fine.\n--\nActually not 8.",
        "Fine.\n-- \nAna\nActually no, let's talk first.",
        "Fine by me.\nFrom: next month I'm on leave so none of this applies yet.",
        "Fine.\nSent from my phone but I can't do Thursdays",
    ],
)
def test_words_after_a_closing_or_a_separator_are_read(text: str) -> None:
    assert reading(text) == UNCLEAR


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Fine.\n\nBest,\nAna\n\nPS: 7. 45 minutes", ("changed", {7: "45m"})),
        (
            "Fine.\n\nBest wishes,\nAna Rivera, MD\nAssociate Professor of Medicine\nUniversity Hospital\n"
            "Tel. +1 555 0100 | arivera@hospital.example.org\n\nThis e-mail is confidential and intended only\n"
            "for the addressee. If you received it in error, delete it.",
            ("accepted", {}),
        ),
        ("Fine.\n\nSent from my iPhone", ("accepted", {})),
        (
            "Fine.\n\nFrom: Sam Patel <sam@med.example.edu>\nSent: Monday\n\n7. A meeting lasts: 30 minutes",
            ("accepted", {}),
        ),
    ],
)
def test_a_signature_a_disclaimer_and_the_original_are_not_her_words(text: str, expected: object) -> None:
    assert reading(text) == expected


# -- 6. a change inside what she quotes, or struck through ------------------------------------------------------
def html_reply(markup: str) -> str:
    message = EmailMessage()
    message["From"], message["Subject"] = "Ana Rivera <arivera@hospital.example.org>", "Re: proposal"
    message.set_content(markup, subtype="html")
    return reply_text(message.as_bytes())


PROPOSAL_HTML = "".join(f"<div>{s.number}. {s.label}: {s.text}</div>" for s in PROPOSED)


@pytest.mark.parametrize(
    "text",
    [
        html_reply(
            '<div dir="ltr">Fine by me</div><div class="gmail_quote"><div>On Mon, Sam wrote:</div><blockquote>'
            + PROPOSAL_HTML.replace("30 minutes", "30 minutes <b>45 minutes please</b>")
            + "</blockquote></div>"
        ),
        "Fine.\n\nFrom: Sam Patel <sam@med.example.edu>\nSent: Monday\nTo: Ana\nSubject: x\n\n"
        "  7. A meeting lasts: 30 minutes   -> 45 minutes (AR)\n",
        "Fine.\n\n>> 7. A meeting lasts: 30 minutes\n> 45 minutes\n",
        html_reply("<p>Fine. 7. <s>30 minutes</s> 45 minutes</p>"),
        html_reply('<p>Fine. 7. <span style="text-decoration: line-through">30 minutes</span> 45 minutes</p>'),
    ],
)
def test_a_change_inside_the_quoted_proposal_or_struck_through_is_please_read(text: str) -> None:
    assert reading(text) == UNCLEAR


def test_the_whole_proposal_quoted_unchanged_is_not_a_change() -> None:
    quoted_html = html_reply(
        f'<div dir="ltr">Fine by me</div><div class="gmail_quote"><blockquote>{PROPOSAL_HTML}</blockquote></div>'
    )
    wrapped = "\n".join(f"> {s.line}" if s.number != 4 else f"> {s.line[:60]}\n> {s.line[60:]}" for s in PROPOSED)
    assert reading(quoted_html) == reading("Fine.\n\n" + QUOTE + wrapped) == ("accepted", {})


# -- 9. a plain part and an HTML part that say different things -------------------------------------------------
def both_parts(plain: str, markup: str) -> bytes:
    message = EmailMessage()
    message["From"], message["Subject"] = "Ana Rivera <arivera@hospital.example.org>", "Re: proposal"
    message.set_content(plain)
    message.add_alternative(markup, subtype="html")
    return message.as_bytes()


def test_plain_and_html_parts_read_differently_are_please_read() -> None:
    answer = read_reply(
        reply_texts(both_parts("Fine.\n", "<p>Not fine, let us talk first.</p>")), PROPOSED, names=NAMES
    )
    assert answer.outcome == "unclear" and "HTML" in answer.problems[0] and "Not fine" in answer.words
    same = read_reply(reply_texts(both_parts("Fine.\n\nAna\n", "<p>Fine.</p><p>Ana</p>")), PROPOSED, names=NAMES)
    assert same.outcome == "accepted"


# -- more of the tester's answers: words thought filler, a sentence taken for a quote header, other letters --------
@pytest.mark.parametrize(
    "text",
    [
        "Fine. Sorry, this is all very confusing.",
        "Sorry, it is all unclear to me. Fine.",
        "Fine, all day on the weekend works for me.",
        "Fine.\nOn 8, please note what Sam wrote:\nI can't do Thursdays.",
        "Fine.\nOn the whole I can live with what you wrote\nbut not item 8.",
        "Fine.\n\n" + QUOTE + "> 7. A meeting lasts: 30 minutes\nX\n",
        "This is ｎｏｔ fine.",
    ],
)
def test_more_words_that_are_not_a_plain_yes_are_please_read(text: str) -> None:
    assert reading(text) == UNCLEAR


@pytest.mark.parametrize("text", ["Fine, thanks. Have a good weekend!", "Fine.\n\nA. R.", "Ｆｉｎｅ."])
def test_wishes_initials_and_wide_letters_are_still_a_yes(text: str) -> None:
    assert reading(text) == ("accepted", {})


# -- a last line that only looks like a name (a hostile hunt): "Fine." then a one-word refusal was read as her
# -- signature under "Fine.", and the answer as agreed; a name counts only when it is hers or the student's
@pytest.mark.parametrize(
    "text",
    [
        "Fine.\n\nNOT",
        "Fine.\n\nNo.",
        "Sounds good.\n\nNo.",
        "OK.\n\nNo.",
        "Fine.\n\nNope.",
        "Fine.\n\nNever.",
        "Fine.\n\nDecline.",
        "Fine.\n\nDon't.",
        "Fine.\n\nWrong.",
        "Fine.\n\nTalk Monday.",
        "Fine.\n\nDiscuss.",
        "Fine.\n\nLater.",
        "Fine.\n\nBest,\nAna\n\nNo.",
        "Fine.\n\nAna No",
        "Fine 👎",
        # a known name beside words a name is not made of (a second hostile round)
        "Fine.\n\nAna Objects.",
        "Fine.\n\nAna Vetoes",
        "Fine.\n\nRivera, NAY",
        "Fine.\n\nAna Nein",
        "Fine.\n\nSam Stop",
        "Fine ❌",
        "Fine.\n\n✗ Ana",
    ],
)
def test_a_refusal_on_a_line_of_its_own_under_a_yes_is_please_read(text: str) -> None:
    assert reading(text) == UNCLEAR


@pytest.mark.parametrize(
    "text",
    [
        "Fine.\n\nAna",
        "Fine.\n\nAna R.",
        "Fine, thanks.\n\nDr. Rivera",
        "Fine.\n\nA. Rivera, MD",
        "Fine 👍",
        "Fine.\n\n—Ana",
    ],
)
def test_her_name_under_a_yes_is_still_her_signature(text: str) -> None:
    assert reading(text) == ("accepted", {})


@pytest.mark.parametrize(
    "text",
    [
        "Fine.\n\nAna Ríos-Müller",  # a surname her policy does not name
        "Fine.\n\nAna Rivera-Smith",
        "Fine.\n\nAna Não",  # a third hostile round: words with an accent or a hyphen passed for names
        "Fine.\n\nAna Nein-danke",
        "Fine.\n\nAna Rivera-Objects",
        "Fine.\n\nAna Nο",  # a Greek omicron
        "Fine.\n\nAna ❎",
        "Fine.\n\nAna 🛑",
    ],
)
def test_a_name_the_agent_does_not_know_under_a_yes_is_please_read(text: str) -> None:
    assert reading(text) == UNCLEAR


@pytest.mark.parametrize("text", ["Fine.\n\nAna Rivera, FACP", "Fine.\n\nAna Rivera, DO", "Fine.\n\nBest, A."])
def test_her_name_with_her_degree_is_still_her_signature(text: str) -> None:
    assert reading(text) == ("accepted", {})
