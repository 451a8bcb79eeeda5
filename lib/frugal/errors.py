"""The one exception type that command-line tools turn into a one-line message.

Library code raises FrugalError for bad *input* (a file, a line of it, an option) with a
message that names the culprit, e.g. ``lexicon.txt:12: word 'foo' has no pronunciation``.
`frugal <tool>` prints it as ``frugal <tool>: error: <message>`` and exits 1, with no
traceback. Programming errors stay ordinary exceptions so that they keep their traceback.
"""


class FrugalError(Exception):
    """Bad input, reported to the user in one line."""


def where(path, line_no=None) -> str:
    """``path`` or ``path:line`` for error messages (line numbers start at 1)."""
    return f"{path}:{line_no}" if line_no is not None else str(path)
