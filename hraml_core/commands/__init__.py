"""The ``hraml`` sub-commands: one module per area, each exposing ``register(subparsers)``.

Handlers return an exit status and raise :class:`CommandError` for a mistake in what the user
asked for; :mod:`hraml_core.cli` prints it as one line (exit status 2). It lives here, not in
``cli.py``, so that the command modules never import the module that imports them.
"""


class CommandError(Exception):
    """An error in what the user asked for: printed as one line, exit status 2, no traceback."""


def text_table(rows: list[list[str]]) -> str:
    """Rows of cells as aligned columns (two spaces apart; the last column is not padded)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for r in rows:
        cells = [c.ljust(w) for c, w in zip(r, widths)] + [r[-1]]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
