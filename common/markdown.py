"""Markdown rendered safely: CommonMark to HTML (markdown-it-py), then an allow-list sanitiser
(nh3), so a description cannot carry scripts, event handlers or javascript: links.

Rendering cost grows with nesting (with Python-Markdown a few thousand nested ``>`` or ``[`` took
13 s), so ``markdown_check`` refuses text past a size cap or a nesting cap before anything is
parsed, and descriptions are rendered once, when saved (``Dataset.description_html``), never per
request."""

import html
import re

import nh3
from markdown_it import MarkdownIt

from common.errors import InvalidInput

# The model's own max_length; a description of this size at the nesting cap renders in well under
# a second (tests/common/test_markdown.py times the worst shapes).
MAX_MARKDOWN_CHARS = 20_000
# Blockquotes and lists inside each other, and brackets inside brackets. Real descriptions nest
# two or three deep; each level multiplies the parser's work.
MAX_NESTING = 8

# A line's container prefix: ">" quote markers and list markers ("-", "*", "+", "1." / "1)"),
# each followed by whitespace or another marker, with indentation between them.
_CONTAINER_PREFIX = re.compile(r"^(?:[ \t]*(?:>|[-*+](?=[ \t])|\d{1,9}[.)](?=[ \t])))+")
_CONTAINER_MARKER = re.compile(r">|[-*+](?=[ \t])|\d{1,9}[.)](?=[ \t])")
# A thematic break ("- - - -", "* * *") is one rule, not nested lists.
_THEMATIC_BREAK = re.compile(r"^[ \t]*([-*_])(?:[ \t]*\1){2,}[ \t]*$")
# Fenced code as the fenced_code extension finds it (a closed fence at the start of a line): it is
# stashed before any other parsing, so what is inside does not nest.
_FENCED_CODE = re.compile(r"^(?P<fence>~{3,}|`{3,})[^\n]*\n.*?(?<=\n)(?P=fence)[ ]*$", re.MULTILINE | re.DOTALL)

ALLOWED_TAGS = {
    "a",
    "abbr",
    "b",
    "blockquote",
    "br",
    "code",
    "em",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "li",
    "ol",
    "p",
    "pre",
    "strong",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
    "ul",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "abbr": {"title"}, "th": {"align"}, "td": {"align"}}


class _AnyLinkMarkdownIt(MarkdownIt):
    def validateLink(self, url: str) -> bool:
        return True


def _parser() -> MarkdownIt:
    # CommonMark (markdown-it-py): its parser is linear on the inputs that made Python-Markdown
    # quadratic (unclosed "<a " tags, "[a](" runs, setext headings). Raw HTML and every link
    # scheme pass the parser so that one place, nh3's allow-list, decides what survives.
    return _AnyLinkMarkdownIt("commonmark", {"html": True, "maxNesting": MAX_NESTING + 4}).enable("table")


# Rendering keeps no state on the instance between calls, so one serves every thread.
_PARSER = _parser()


def _nesting_depth(text: str) -> int:
    """The deepest nesting of containers (quotes and lists, by markers and by indentation) and of
    brackets. Conservative: it may count a little more than the parser would, never less."""
    deepest = 0
    brackets = 0
    for line in _FENCED_CODE.sub("", text).splitlines():
        if _THEMATIC_BREAK.match(line):
            continue
        if not line.strip():
            # Links and inline brackets cannot span a blank line (a new paragraph).
            brackets = 0
            continue
        prefix = _CONTAINER_PREFIX.match(line)
        markers = len(_CONTAINER_MARKER.findall(prefix.group(0))) if prefix else 0
        rest = line[prefix.end() :] if prefix else line
        # Each four columns of indentation can open one more list level.
        indent = len(line) - len(line.lstrip(" \t"))
        deepest = max(deepest, markers + line[:indent].expandtabs(4).count(" ") // 4)
        escaped = False
        for char in rest:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == "[":
                brackets += 1
                deepest = max(deepest, brackets)
            elif char == "]" and brackets:
                brackets -= 1
    return deepest


def markdown_check(text: str, *, what: str = "The description") -> None:
    """Refuse Markdown too long or too deeply nested to render cheaply (InvalidInput, a form
    error on pages and a JSON 400 on the API); call it before rendering anything a user wrote."""
    if len(text) > MAX_MARKDOWN_CHARS:
        raise InvalidInput(
            f"{what} is {len(text):,} characters long; the limit is {MAX_MARKDOWN_CHARS:,}.",
            code="description_too_long",
        )
    depth = _nesting_depth(text)
    if depth > MAX_NESTING:
        raise InvalidInput(
            f"{what} nests quotes, lists or brackets {depth} deep; at most {MAX_NESTING} levels are "
            "allowed. Flatten it, or put literal text in a code block.",
            code="description_too_nested",
        )


def description_html_of(text: str) -> str:
    """The HTML stored for a description: rendered Markdown, or, for old text past the caps
    (saved before they existed), the text escaped as plain paragraphs, never parsed."""
    try:
        return markdown_render(text)
    except InvalidInput:
        paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text or "") if p.strip()]
        return "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)


def markdown_render(text: str) -> str:
    """Check (``markdown_check``), render and sanitise. Call it when text is saved, not per view."""
    text = text or ""
    markdown_check(text)
    html_out = _PARSER.render(text)
    return nh3.clean(
        html_out,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
