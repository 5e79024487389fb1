"""Markdown descriptions: size and nesting caps before anything is parsed, so no shape renders slowly,
and what renders is sanitised."""

from __future__ import annotations

import time

import pytest

from common.errors import InvalidInput
from common.markdown import MAX_MARKDOWN_CHARS, MAX_NESTING, markdown_check, markdown_render

# Shapes that were slow to render (Python-Markdown: nested ">" or "[" took 13 s) or are quadratic
# in common parsers, each as long as the size cap allows.
PATHOLOGICAL = {
    "nested quotes": ">" * 5_000 + " x",
    "nested spaced quotes": "> " * 5_000 + "x",
    "nested brackets": "[" * 9_000 + "x" + "]" * 9_000,
    "open brackets": "[" * MAX_MARKDOWN_CHARS,
    "open images": "![" * 9_000,
    "nested lists": "- " * 5_000 + "x",
    "indented lists": "\n".join(" " * (4 * i) + "- x" for i in range(60)),
    "link openers": "[a](" * 5_000,
    "unclosed tags": "<a " * 6_600,
    "unclosed tags per paragraph": "<a \n\n" * 3_900,
    "setext headings": "a\n=\n" * 5_000,
    "autolink openers": "<http://" * 2_500,
    "emphasis": "*_" * 5_000 + "x" + "_*" * 5_000,
    "quotes at the cap": "\n".join("> " * MAX_NESTING + "x" for _ in range(1_900)),
}


@pytest.mark.parametrize("name", list(PATHOLOGICAL))
def test_pathological_markdown_is_refused_or_renders_fast(name):
    text = PATHOLOGICAL[name][:MAX_MARKDOWN_CHARS]
    started = time.perf_counter()
    try:
        markdown_render(text)
    except InvalidInput as exc:
        assert exc.code == "description_too_nested"
    assert time.perf_counter() - started < 1.0, f"{name} took {time.perf_counter() - started:.2f} s"


def test_the_13_second_shapes_are_refused_with_a_reason():
    with pytest.raises(InvalidInput) as nested:
        markdown_check(">" * 3_000 + " deep")
    assert nested.value.code == "description_too_nested"
    assert f"at most {MAX_NESTING} levels" in nested.value.detail and "3000 deep" in nested.value.detail
    with pytest.raises(InvalidInput, match="nests quotes, lists or brackets"):
        markdown_check("[" * 3_000)
    with pytest.raises(InvalidInput) as long:
        markdown_check("a" * (MAX_MARKDOWN_CHARS + 1))
    assert long.value.code == "description_too_long" and "20,000" in long.value.detail


def test_ordinary_markdown_renders_and_is_sanitised():
    text = (
        "# Cohort\n\n> quoted\n> > twice\n\n- a\n    - b\n        - c\n\n| col | n |\n|---|---|\n| x | 1 |\n\n"
        "```json\n" + "{\n" + " " * 60 + '"deep": [[[[[[[[[[1]]]]]]]]]]\n}\n```\n\n'
        "[site](https://example.org) [bad](javascript:alert(1)) <script>alert(1)</script> <img src=x onerror=y>\n\n"
        "- - - - - - - - - - -\n"
    )
    html = markdown_render(text)  # deep indentation and brackets inside a fenced block do not nest
    assert "<h1>Cohort</h1>" in html and "<table>" in html and html.count("<blockquote>") == 2
    assert html.count("<ul>") == 3 and '"deep": [[[[[[[[[[1]]]]]]]]]]' in html.replace("&quot;", '"')
    assert '<a href="https://example.org" rel="noopener noreferrer nofollow">site</a>' in html
    assert "javascript:" not in html and "<script" not in html and "onerror" not in html and "<img" not in html
    assert "<hr>" in html or "<hr />" in html
