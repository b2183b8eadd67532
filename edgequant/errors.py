"""The library's expected-failure type, apart from the CLI so library modules need no CLI helper.

`edgequant.cli.run` turns a `UserError` (and ValueError/FileNotFoundError) into one `error: ...`
line on stderr; any other exception is a bug and keeps its traceback.
"""


class UserError(Exception):
    """An expected failure caused by input the user can fix; its message is the whole story."""
