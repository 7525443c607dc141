"""What a `RunResult`'s HTML shows, read back with the standard library's HTML parser."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class Shown:
    """The visible parts of the HTML display: its header, error line and tables' rows."""

    header: str = ""
    error: str = ""
    rows: list[tuple[str, ...]] = field(default_factory=list)  #: (name, type, value)
    more: list[str] = field(default_factory=list)  #: "… and N more" lines
    imported_summary: str = ""
    imported: list[tuple[str, ...]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    text: str = ""  #: the plain-text fallback


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.shown = Shown()
        self.stack: list[str] = []  # the class (or tag) of each open element
        self.cells: list[str] | None = None
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack.append(dict(attrs).get("class") or tag)
        if tag == "tr":
            self.cells = []
        if tag in ("td", "th", "summary", "div", "pre"):
            self.text = ""

    def handle_endtag(self, tag: str) -> None:
        where = self.stack.pop()
        shown = self.shown
        if tag in ("td", "th") and self.cells is not None:
            self.cells.append(self.text)
        elif tag == "tr" and self.cells is not None:
            rows = shown.imported if "rm-imported" in self.stack else shown.rows
            if where == "rm-more":
                shown.more.append(self.cells[0])
            elif self.cells != ["name", "type", "value"]:
                rows.append(tuple(self.cells))
            self.cells = None
        elif tag == "summary":
            shown.imported_summary = self.text
        elif where in ("rm-error", "rm-note", "rm-text"):
            value = self.text.strip()
            if where == "rm-error":
                shown.error = value
            elif where == "rm-note":
                shown.notes.append(value)
            else:
                shown.text = self.text

    def handle_data(self, data: str) -> None:
        self.text += data
        if "rm-header" in self.stack:
            self.shown.header += data


def read(html: str) -> Shown:
    reader = _Reader()
    reader.feed(html)
    reader.close()
    reader.shown.header = " ".join(reader.shown.header.split())
    return reader.shown
