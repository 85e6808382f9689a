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
    """``exc``'s message with its field named as the flag (``flagged``)."""
    return flagged(str(exc), getattr(exc, "field", None), parser, aliases)


def flagged(
    message: str, field: str | None, parser: argparse.ArgumentParser | None, aliases: dict[str, str] | None = None
) -> str:
    """``message`` about ``field`` as the command line says it: the field's first mention becomes the flag, or
    the flag leads the line where the message does not mention it; where no flag sets the field, unchanged."""
    flag = flag_for(parser, field, aliases) if field else None
    if flag is None or field is None:
        return message
    # a whole word, never part of a path or a file name ('out' in build/out/x.onnx stays)
    named, count = re.subn(rf"(?<![\w/.-]){re.escape(field)}(?![\w/.-])", flag, message, count=1)
    return named if count else f"{flag}: {message}"
