"""A digest split for ``[digest] max_bytes``: every part respects the limit, unless it is one original that is
larger than the limit by itself — that one goes alone, as the student wrote it (Hypothesis over sizes)."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from agent.rules.digest import Original, compose_parts
from tests.test_digest import NOW, message, original

SUBJECTS = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=80)
SPECS = st.lists(
    st.tuples(SUBJECTS, st.integers(0, 12_000), st.integers(0, 20_000), st.booleans()), min_size=1, max_size=6
)


def originals(specs: list[tuple[str, int, int, bool]]) -> list[Original]:
    made = []
    for index, (subject, text, attached, html) in enumerate(specs):
        msg = message(
            subject.strip() or "(none)",
            "word " * (text // 5),
            html=("<p>" + "é" * text + "</p>") if html else None,
            files=[(f"f{index}.pdf", bytes(range(256)) * (attached // 256))] if attached >= 256 else [],
            Message_ID=f"<m{index}@uni.example>",
        )
        made.append(original(msg, f"k{index}"))
    return made


def parts_of(items: list[Original], max_bytes: int) -> list[tuple[tuple[str, ...], EmailMessage | None]]:
    found = compose_parts(
        items,
        student_name="Ana Lopez",
        student_address="ana@uni.example",
        mentor_name="Dr. Rivera",
        max_bytes=max_bytes,
        now=NOW,
        domain="uni.example",
    )
    return [(part.keys, part.message) for part in found]


def wrapped_size(item: Original) -> int:
    ((_, alone),) = parts_of([item], 10**9)
    assert alone is not None
    return len(alone.as_bytes(policy=policy.SMTP))


# Wrapped as one part of several, an original carries a few bytes more than wrapped on its own: the subject's
# "(2/3)" and the digest's own text. One that fits alone by less than this may still be too big as a part.
PART_MARKS = 100


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SPECS, st.integers(3_000, 40_000))
# Found by Hypothesis: a part of three came out 5 bytes over once titled and given the generator's boundaries.
@example(
    [
        ("", 1000, 0, False),
        ("¡¡", 0, 728, False),
        ("¡¡", 451, 0, True),
        ("¢¥\U00088601\U00059cbcß|8", 749, 1995, True),
        ("0000¡¡¡¡¡𐀀𐀀𐴠", 2770, 0, False),
    ],
    25967,
)
def test_every_part_respects_max_bytes_unless_it_is_one_oversized_original(
    specs: list[tuple[str, int, int, bool]], max_bytes: int
) -> None:
    items = originals(specs)
    by_key = {item.key: item for item in items}
    parts = parts_of(items, max_bytes)
    carried = [key for keys, _ in parts for key in keys]
    assert sorted(carried) == sorted(by_key)  # each exactly once
    for keys, _ in parts:  # in the order written, inside each part and from part to part
        assert list(keys) == sorted(keys, key=lambda k: int(k[1:]))
    assert [int(keys[0][1:]) for keys, _ in parts] == sorted(int(keys[0][1:]) for keys, _ in parts)
    for keys, msg in parts:
        if msg is not None:
            assert len(msg.as_bytes(policy=policy.SMTP)) <= max_bytes
        else:  # goes as the student wrote it: one message, too large for any digest
            assert len(keys) == 1
            item = by_key[keys[0]]
            assert len(item.raw) > max_bytes or wrapped_size(item) > max_bytes - PART_MARKS
    digests = [msg for _, msg in parts if msg is not None]
    if len(digests) > 1:
        assert [str(m["Subject"]).rsplit(" ", 1)[1] for m in digests] == [
            f"({i}/{len(digests)})" for i in range(1, len(digests) + 1)
        ]


def test_an_original_over_the_limit_goes_alone_and_the_rest_share_one_digest() -> None:
    big = original(message("Full scan", "see the scan", files=[("scan.pdf", b"x" * 60_000)]), "big")
    small = [original(message(f"Note {i}", f"note {i}"), f"n{i}") for i in range(3)]
    parts = parts_of([small[0], big, small[1], small[2]], 20_000)
    assert [(keys, msg is None) for keys, msg in parts] == [(("n0", "n1", "n2"), False), (("big",), True)]
    digest = parts[0][1]
    assert digest is not None and "(1/" not in str(digest["Subject"])  # one digest: no part numbers
