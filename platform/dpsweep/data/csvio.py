"""CSV tables (plain or gzip) read with the csv module, with one-line errors.

Report CSVs hold long, quoted, multi-line fields, so the csv module's field size limit
is raised. Errors name the file, the row and the column, and show a cell's value only
when it can be neither report text nor an identifier (a number of at most four
characters, or a yes/no word): ids, accession numbers and volume names are patient data.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from dpsweep.errors import DataError

_SHOWABLE = re.compile(
    r"^\s*([+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|true|false|yes|no|nan|na|n/a|none|null)\s*$",
    re.IGNORECASE,
)
_SHOWN_CHARS = 4  # "-1.0", "0.5", "2": a label's value; longer numbers may be ids


def _raise_field_size_limit() -> None:
    limit = sys.maxsize
    while True:
        try:
            csv.field_size_limit(limit)
            return
        except OverflowError:
            limit //= 2


def show_value(value: str) -> str:
    """The cell value quoted for an error message, or a placeholder if it could be text or an id."""
    text = value.strip()
    if not text or (_SHOWABLE.match(text) and (len(text) <= _SHOWN_CHARS or text.isalpha())):
        return repr(text)
    return f"a value of {len(text)} characters (not shown: it may be report text or an identifier)"


@dataclass
class Table:
    """A CSV file read whole: its header and data rows (all cells as strings)."""

    path: Path
    header: tuple[str, ...]
    rows: list[list[str]]
    fmt: str
    kind: str = "file"  # how messages name it: "labels file", "split file", ...

    @property
    def where(self) -> str:
        """Message prefix naming format and file: "ct-rate: labels file /x/y.csv"."""
        return f"{self.fmt}: {self.kind} {self.path}"

    def index(self, column: str) -> int:
        return self.header.index(column)

    def column(self, column: str) -> list[str]:
        j = self.index(column)
        return [row[j] for row in self.rows]

    def require(self, columns: Iterable[str], *, expected: str) -> None:
        """Raise DataError naming the first of `columns` absent from the header."""
        for name in columns:
            if name not in self.header:
                raise DataError(f"{self.where} lacks column {name!r}; expected {expected}")


def open_text(path: Path) -> io.TextIOBase:
    """Open a .csv or .csv.gz file as UTF-8 text (a leading BOM is dropped)."""
    if path.name.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")  # noqa: SIM115 - returned to the caller


def read_table(path: Path, *, fmt: str, kind: str = "file") -> Table:
    """Read a whole CSV table; DataError (one line, no cell text) on any malformed row.

    kind names the file in messages ("labels file", "reports file", ...).
    """
    _raise_field_size_limit()
    where = f"{fmt}: {kind} {path}"
    if not path.is_file():
        raise DataError(f"{where} does not exist; check the data folder")
    rows: list[list[str]] = []
    try:
        with open_text(path) as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise DataError(f"{where} is empty; expected a header row and data rows")
            header = [name.strip() for name in header]
            _check_header(where, header)
            for row in reader:
                if not row:
                    continue
                if len(row) != len(header):
                    raise DataError(
                        f"{where} data row {len(rows) + 1} (line {reader.line_num}) has "
                        f"{len(row)} fields but the header has {len(header)}; quote fields that "
                        "contain commas, quotes or newlines"
                    )
                rows.append(row)
    except csv.Error as exc:
        raise DataError(
            f"{where} is not valid CSV after data row {len(rows)} ({exc}); "
            "fix the quoting of that row"
        ) from None
    except UnicodeDecodeError:
        raise DataError(
            f"{where} is not UTF-8 text near data row {len(rows) + 1}; re-save it as UTF-8"
        ) from None
    except (OSError, EOFError) as exc:
        raise DataError(
            f"{where} cannot be read ({type(exc).__name__}); "
            "check that it is a complete .csv or .csv.gz file"
        ) from None
    return Table(path=path, header=tuple(header), rows=rows, fmt=fmt, kind=kind)


def _check_header(where: str, header: Sequence[str]) -> None:
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise DataError(f"{where} has column {name!r} twice; rename or drop one")
        seen.add(name)


def find_csv(folder: Path, stem: str) -> Path | None:
    """`folder/stem.csv` or `folder/stem.csv.gz`, whichever exists (plain first)."""
    for candidate in (folder / f"{stem}.csv", folder / f"{stem}.csv.gz"):
        if candidate.is_file():
            return candidate
    return None


def write_table(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Write a CSV table; gzip (with a fixed timestamp, so bytes are reproducible) for .gz."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".gz"):
        with (
            open(path, "wb") as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz,
            io.TextIOWrapper(gz, encoding="utf-8", newline="") as handle,
        ):
            _write_rows(handle, header, rows)
    else:
        with open(path, "w", encoding="utf-8", newline="") as handle:
            _write_rows(handle, header, rows)


def _write_rows(
    handle: io.TextIOBase, header: Sequence[str], rows: Iterable[Sequence[object]]
) -> None:
    writer = csv.writer(handle)
    writer.writerow(header)
    writer.writerows(rows)
