"""The one error type of the data layer."""
from __future__ import annotations

from pathlib import Path


class DatasetError(ValueError):
    """A dataset that cannot be found, fetched or read; the message names the file and the problem.

    A ``ValueError`` subclass, so code that guards against bad input with ``except ValueError``
    also catches it.

    Raise it through :func:`dataset_error` so every message starts with the file (or dataset) it is
    about: ``"/data/x.csv: ragged rows: line 4 has 2 fields, expected 3"``.
    """


def dataset_error(where: str | Path | None, problem: str) -> DatasetError:
    """A :class:`DatasetError` whose message is ``"<where>: <problem>"`` (or just the problem)."""
    return DatasetError(f"{where}: {problem}" if where else problem)


def plural(count: int, noun: str) -> str:
    """``"1 row"``, ``"3 rows"``, ``"2 entries"``."""
    if count == 1:
        return f"{count} {noun}"
    return f"{count} {noun[:-1]}ies" if noun.endswith("y") else f"{count} {noun}s"
