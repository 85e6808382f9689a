"""The library's errors as the command line says them: an error about one input carries its field
(``FacebatchError.field``, the name a Python caller passes); here it becomes the flag that sets it."""

from __future__ import annotations

import argparse
import re

from facebatch.core.errors import FacebatchError


def flag_for(parser: argparse.ArgumentParser | None, field: str, aliases: dict[str, str] | None = None) -> str | None:
    """The flag that sets ``field`` in ``parser``'s command (its long form), or None where no flag does
    (a positional argument keeps the field's name). ``aliases`` maps fields whose flag has another name."""
    if aliases and field in aliases:
        return aliases[field]
    for action in parser._actions if parser is not None else ():
        if action.dest == field and action.option_strings:
            return max(action.option_strings, key=len)
    return None


def error_line(
    exc: FacebatchError, parser: argparse.ArgumentParser | None, aliases: dict[str, str] | None = None
) -> str:
    """``exc``'s message with its field named as the flag: the field's first mention becomes the flag, or the
    flag leads the line where the message does not mention it."""
    message = str(exc)
    field = getattr(exc, "field", None)
    flag = flag_for(parser, field, aliases) if field else None
    if flag is None:
        return message
    named, count = re.subn(rf"(?<![\w-]){re.escape(field)}(?![\w-])", flag, message, count=1)
    return named if count else f"{flag}: {message}"
