"""HTML in mail: rendered to plain text, cut down to a safe subset (links, images by Content-ID), and plain text
shown as HTML. Pure: the stdlib parser; remote images are never loaded (their alt text is shown instead).

The work is in :mod:`agent.rules.html_parsers`, imported at the first call: an idle daemon that meets no HTML
does not hold the parser and html's entity table (issue 21).
"""

from __future__ import annotations

from collections.abc import Callable


def html_to_text(markup: str, *, quotes: bool = False) -> str:
    """A readable plain-text rendering of an HTML body; with ``quotes`` (a reply read for its words), blockquoted
    lines start with "> " and struck-through text is marked "[struck through: …]"."""
    from agent.rules import html_parsers

    return html_parsers.html_to_text(markup, quotes=quotes)


def sanitise_html(markup: str, resolve_cid: Callable[[str], str | None] = lambda _cid: None) -> str:
    """A safe fragment of ``markup``: no scripts, handlers, forms or remote content; balanced tags.

    ``resolve_cid`` maps an original ``cid:`` reference to the new Content-ID (without brackets), or ``None``.
    """
    from agent.rules import html_parsers

    return html_parsers.sanitise_html(markup, resolve_cid)


def text_to_html(text: str) -> str:
    """A plain-text body for the HTML view: escaped, line breaks and spacing kept."""
    from agent.rules import html_parsers

    return html_parsers.text_to_html(text)
