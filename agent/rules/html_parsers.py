"""The HTML parsers behind :mod:`agent.rules.htmltext` (which imports this module only when it is called: the
stdlib's parser and html's entity table cost an idle daemon 0.45 MB). Pure: remote images are never loaded
(their alt text is shown instead)."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping
from html.parser import HTMLParser

from agent.rules.mimetext import clean_text

_BLOCKS = frozenset(
    {
        "address",
        "article",
        "aside",
        "blockquote",
        "caption",
        "center",
        "dd",
        "div",
        "dl",
        "dt",
        "figcaption",
        "figure",
        "footer",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "table",
        "tbody",
        "tfoot",
        "thead",
        "tr",
        "ul",
    }
)
_ITEMS = frozenset({"li", "dd", "dt", "tr"})  # one line each, no blank line between them
_SKIP_CONTENT = frozenset(
    {
        "applet",
        "embed",
        "frame",
        "frameset",
        "head",
        "iframe",
        "math",
        "noembed",
        "noframes",
        "noscript",
        "object",
        "script",
        "select",
        "style",
        "svg",
        "template",
        "title",
    }
)
_HTML_SPACE = re.compile(r"[ \t\n\r\f]+")  # not \s: a no-break space is meant to stay
_VOID = frozenset(
    {
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
    }
)


class _TextRenderer(HTMLParser):
    """HTML to readable plain text: blocks on their own lines, list items with "- ", links with their URL."""

    def __init__(self, *, quotes: bool = False) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._quotes = quotes  # text inside <blockquote> gets "> " per level, as a plain-text reply quotes
        self._depth = 0
        self._skip: list[str] = []
        self._pre = 0
        self._links: list[tuple[str, int]] = []
        self._struck: dict[str, list[bool]] = {}  # per open tag: whether it strikes its text through

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._skip or tag in _SKIP_CONTENT:
            if tag not in _VOID:
                self._skip.append(tag)
            return
        values = {name: value or "" for name, value in attrs}
        if tag in _BLOCKS or tag == "br":
            self.parts.append("\n")
        if self._quotes and tag not in _VOID:  # in a reply, struck text is shown as such: it is not her value
            struck = tag in ("s", "strike", "del") or "line-through" in values.get("style", "").lower()
            self._struck.setdefault(tag, []).append(struck)
            if struck:
                self.parts.append("[struck through: ")
        if tag == "li":
            self.parts.append("- ")
        elif tag == "pre":
            self._pre += 1
        elif tag == "blockquote" and self._quotes:
            self._depth += 1
        elif tag == "a" and values.get("href", "").strip():
            self._links.append((values["href"].strip(), len(self.parts)))
        elif tag == "img" and values.get("alt", "").strip():
            self.parts.append(f"[image: {values['alt'].strip()}]")
        elif tag in ("td", "th") and not self._line_start():
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if self._skip:
            if tag == self._skip[-1]:
                self._skip.pop()
            return
        if self._struck.get(tag) and self._struck[tag].pop():
            self.parts.append("]")
        if tag == "pre" and self._pre:
            self._pre -= 1
        if tag == "blockquote" and self._depth:
            self._depth -= 1
        if tag == "a" and self._links:
            href, start = self._links.pop()
            label = " ".join("".join(self.parts[start:]).split())
            if href.removeprefix("mailto:") not in label and not href.startswith("#"):
                self.parts.append(f" <{href}>")
        if tag in _BLOCKS and tag not in _ITEMS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._pre:
            self.parts.append(data)
            return
        text = _HTML_SPACE.sub(" ", data)
        if self._line_start():
            text = text.lstrip()
            if self._depth and text:
                text = "> " * self._depth + text
        self.parts.append(text)

    def _line_start(self) -> bool:
        last = next((part for part in reversed(self.parts) if part), "\n")
        return last.endswith("\n")


def html_to_text(markup: str, *, quotes: bool = False) -> str:
    """A readable plain-text rendering of an HTML body; with ``quotes`` (a reply read for its words), blockquoted
    lines start with "> " and struck-through text is marked "[struck through: …]"."""
    renderer = _TextRenderer(quotes=quotes)
    renderer.feed(clean_text(markup))
    renderer.close()
    lines = [line.rstrip() for line in "".join(renderer.parts).split("\n")]
    text = "\n".join(line if line.strip() else "" for line in lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n")


_ALLOWED = frozenset(
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
_GLOBAL_ATTRS = frozenset({"title", "dir", "lang"})
_TAG_ATTRS: Mapping[str, frozenset[str]] = {
    "a": frozenset({"href"}),
    "img": frozenset({"src", "alt", "width", "height"}),
    "font": frozenset({"color", "face", "size"}),
    "ol": frozenset({"start", "type"}),
    "li": frozenset({"value"}),
    "table": frozenset({"border", "cellpadding", "cellspacing", "width", "align"}),
    "td": frozenset({"colspan", "rowspan", "align", "valign", "width"}),
    "th": frozenset({"colspan", "rowspan", "align", "valign", "width", "scope"}),
    "col": frozenset({"span", "width"}),
    "colgroup": frozenset({"span", "width"}),
    "p": frozenset({"align"}),
    "div": frozenset({"align"}),
}
_LINK_SCHEMES = frozenset({"http", "https", "mailto", "tel"})
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*):")


def safe_href(value: str) -> str | None:
    """The link target if it is http(s), mailto, tel or an in-page anchor; ``None`` otherwise."""
    cleaned = re.sub(r"[\x00-\x20\x7f]", "", value)
    match = _SCHEME.match(cleaned)
    if match:
        return cleaned if match.group(1).lower() in _LINK_SCHEMES else None
    return cleaned if cleaned.startswith("#") and len(cleaned) > 1 else None


class _Sanitiser(HTMLParser):
    """Rebuild HTML from an allow-list; everything else is dropped, tags are always balanced."""

    def __init__(self, resolve_cid: Callable[[str], str | None]) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self._open: list[str] = []
        self._skip: list[str] = []
        self._resolve_cid = resolve_cid

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._skip or tag in _SKIP_CONTENT:
            if tag not in _VOID:
                self._skip.append(tag)
            return
        if tag not in _ALLOWED:
            return
        kept = self._attributes(tag, attrs)
        if kept is None:
            return
        rendered = "".join(f' {name}="{html.escape(value, quote=True)}"' for name, value in kept)
        self.out.append(f"<{tag}{rendered}>")
        if tag not in _VOID:
            self._open.append(tag)

    def _attributes(self, tag: str, attrs: list[tuple[str, str | None]]) -> list[tuple[str, str]] | None:
        allowed = _GLOBAL_ATTRS | _TAG_ATTRS.get(tag, frozenset())
        kept: list[tuple[str, str]] = []
        for name, raw in attrs:
            value = clean_text(raw or "")
            if name not in allowed:
                continue
            if name == "href":
                href = safe_href(value)
                if href is not None:
                    kept.append((name, href))
            elif name == "src":
                src = self._resolve_cid(value.strip()[4:]) if value.strip().lower().startswith("cid:") else None
                if src is None:
                    return self._drop_image(attrs)
                kept.append((name, "cid:" + src))
            else:
                kept.append((name, value))
        if tag == "img" and not any(name == "src" for name, _ in kept):
            return self._drop_image(attrs)
        return kept

    def _drop_image(self, attrs: list[tuple[str, str | None]]) -> list[tuple[str, str]] | None:
        """Remote or unknown images are not loaded: show their alt text instead."""
        alt = next((value for name, value in attrs if name == "alt" and value and value.strip()), None)
        if alt:
            self.out.append(html.escape(f"[image: {clean_text(alt).strip()}]", quote=False))
        return None

    def handle_endtag(self, tag: str) -> None:
        if self._skip:
            if tag == self._skip[-1]:
                self._skip.pop()
            return
        if tag not in self._open:
            return
        while self._open:
            closing = self._open.pop()
            self.out.append(f"</{closing}>")
            if closing == tag:
                break

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.out.append(html.escape(clean_text(data), quote=False))

    def finish(self) -> str:
        self.close()
        self.out.extend(f"</{tag}>" for tag in reversed(self._open))
        self._open.clear()
        return "".join(self.out)


def sanitise_html(markup: str, resolve_cid: Callable[[str], str | None] = lambda _cid: None) -> str:
    """A safe fragment of ``markup``: no scripts, handlers, forms or remote content; balanced tags.

    ``resolve_cid`` maps an original ``cid:`` reference to the new Content-ID (without brackets), or ``None``.
    """
    sanitiser = _Sanitiser(resolve_cid)
    sanitiser.feed(clean_text(markup))
    return sanitiser.finish()


def text_to_html(text: str) -> str:
    """A plain-text body for the HTML view: escaped, line breaks and spacing kept."""
    escaped = html.escape(clean_text(text), quote=False)
    return f'<pre style="white-space:pre-wrap;font-family:inherit">{escaped}</pre>'
