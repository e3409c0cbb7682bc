"""What we hand to a spreadsheet: a CSV cell a spreadsheet would evaluate as a formula (CSV
injection) is prefixed with a quote, which shows the text as written and removes nothing. Used
by every CSV ClientWindow writes (exports/csv.py, the import report in imports/views.py)."""

import re

# = + - @, tab, CR, LF, the quote itself, then fullwidth = + - @ and small = + - @
FORMULA_START = "=+-@\t\r\n'\uff1d\uff0b\uff0d\uff20\ufe66\ufe62\ufe63\ufe6b"
_FORMULA = re.compile(f"^[{re.escape(FORMULA_START)}]")


def neutralise(cell: str) -> str:
    """The cell as text no spreadsheet will evaluate."""
    return "'" + cell if _FORMULA.match(cell) else cell
