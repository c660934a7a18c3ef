"""The API reference documents every server option, in both spellings, with its default."""

from __future__ import annotations

import ast
import dataclasses
import re

from serverproc import REPO
from wsserver.options import ServerOptions, _snake

API = REPO / "docs" / "api.md"
ROW = re.compile(r"^\| `(\w+)` \| `(\w+)` \| `([^`]*)` \|", re.MULTILINE)


def test_every_option_is_in_the_reference_with_its_default() -> None:
    rows = {snake: (camel, default) for camel, snake, default in ROW.findall(API.read_text())}
    fields = {field.name: field.default for field in dataclasses.fields(ServerOptions)}
    assert set(rows) == set(fields), "docs/api.md and ServerOptions list different options"
    for name, default in fields.items():
        camel, documented = rows[name]
        assert _snake(camel) == name, f"{camel} is not the camelCase of {name}"
        assert ast.literal_eval(documented) == default, f"{name}: docs say {documented}, code says {default!r}"


MARKDOWN = sorted([*(REPO / "docs").glob("*.md"), REPO / "README.md"])
CODE_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_python_code_in_the_docs_compiles() -> None:
    for page in MARKDOWN:
        for number, block in enumerate(CODE_BLOCK.findall(page.read_text())):
            if block.lstrip().startswith(">>>"):
                continue  # an interactive session
            compile(block, f"{page.name} block {number + 1}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


def test_relative_links_resolve() -> None:
    for page in MARKDOWN:
        for target in LINK.findall(page.read_text()):
            if "://" in target:
                continue
            assert (page.parent / target).exists(), f"{page.relative_to(REPO)} links to missing {target}"


README_ROW = re.compile(r"^\| `(\w+)` \| `(\w+)` \|", re.MULTILINE)


def test_readme_option_table_lists_every_option_in_both_spellings() -> None:
    rows = dict((snake, camel) for camel, snake in README_ROW.findall((REPO / "README.md").read_text()))
    assert set(rows) == {field.name for field in dataclasses.fields(ServerOptions)}
    for snake, camel in rows.items():
        assert _snake(camel) == snake, f"README: {camel} is not the camelCase of {snake}"
