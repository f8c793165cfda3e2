"""The import's small data types, shared by every stage (read → map → validate → classify →
write): the options chosen, a row error, a conflict and the result shown to the user."""
from __future__ import annotations

from dataclasses import dataclass, field

from flask_babel import gettext as _

MAX_ERRORS = 1000


@dataclass
class Options:
    update_existing: bool = False
    create_locations: bool = False


@dataclass
class RowError:
    row: int  # spreadsheet row number (header = 1); 0: the file as a whole
    column: str  # the file's column header, "" when not about one column
    message: str

    def __str__(self):
        if self.row and self.column:
            return _("Row %(row)d, column “%(col)s”: %(msg)s", row=self.row, col=self.column,
                     msg=self.message)
        if self.row:
            return _("Row %(row)d: %(msg)s", row=self.row, msg=self.message)
        return self.message


@dataclass
class Conflict:
    row: int
    tag: str
    columns: list  # [(column header, current value, value in the file)]


@dataclass
class Result:
    format: str = ""
    headers: list = field(default_factory=list)
    mapping: dict = field(default_factory=dict)  # column index → field
    total: int = 0
    new: int = 0
    unchanged: int = 0
    changed: int = 0
    conflicts: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    preview: list = field(default_factory=list)  # first rows as parsed {field: value}
    missing_locations: list = field(default_factory=list)
    committed: bool = False
    encoding: str = ""
    delimiter: str = ""
    warnings: list = field(default_factory=list)  # shown with the preview; do not block

    @property
    def ok(self) -> bool:
        return not self.errors and not self.conflicts

    def summary(self) -> dict:
        return {"rows": self.total, "new": self.new, "unchanged": self.unchanged,
                "changed": self.changed, "conflicts": len(self.conflicts),
                "errors": len(self.errors), "committed": self.committed,
                "created_locations": self.missing_locations if self.committed else []}


@dataclass
class ParsedRow:
    """A row that passed validation: its spreadsheet number, the leak's values (location: a
    Location, or the lower-cased path tuple of one still to be created) and its status."""
    rownum: int
    values: dict
    status: str


class RowErrors:
    """Adds row errors to the result's list, naming the file's column of a field, and stops
    adding after MAX_ERRORS."""

    def __init__(self, errors: list, column_of: dict):
        self.errors, self.column_of = errors, column_of

    def __call__(self, row: int, f_name: str, message: str) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(RowError(row, self.column_of.get(f_name, ""), message))

    def __len__(self) -> int:
        return len(self.errors)
