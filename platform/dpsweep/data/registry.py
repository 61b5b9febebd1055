"""A small registry of data-set readers by format name.

Formats are an open set (a site may add its own reader), so they live in a registry
that rejects duplicate names and names the unknown value, with the known ones, in its
error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from dpsweep.data.types import Corpus, DataOptions
from dpsweep.errors import DataError

Reader = Callable[[Path, DataOptions], Corpus]
"""Reads the data set at an existing path into a corpus; raises DataError on bad data."""


@dataclass(frozen=True)
class FormatEntry:
    """A registered format: its reader and a phrase describing the layout it expects."""

    name: str
    reader: Reader
    layout: str


class FormatRegistry:
    """Format name -> reader. Duplicate names are refused; unknown names raise DataError."""

    def __init__(self) -> None:
        self._entries: dict[str, FormatEntry] = {}

    def register(self, name: str, reader: Reader, *, layout: str) -> None:
        """Add a format; `layout` completes "pass ..." in error messages and CLI help."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a data format name must be a non-empty string, got {name!r}")
        if name in self._entries:
            raise ValueError(f"data format {name!r} is already registered; pick another name")
        self._entries[name] = FormatEntry(name=name, reader=reader, layout=layout)

    def entry(self, name: str) -> FormatEntry:
        """The registered entry for `name`; DataError naming the known formats otherwise."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise DataError(
                f"unknown data format {name!r}; use one of: {', '.join(self.names())}"
            ) from None

    def get(self, name: str) -> Reader:
        """The reader for `name`; DataError naming the known formats otherwise."""
        return self.entry(name).reader

    __getitem__ = get

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._entries))

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
