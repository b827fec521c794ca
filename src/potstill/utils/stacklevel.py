"""Warnings that point at the user's code, however deep inside potstill and pydantic they
are raised."""

from __future__ import annotations

import os
import sys

import pydantic

_LIBRARY_FOLDERS = tuple(
    os.path.dirname(os.path.abspath(module.__file__)) + os.sep
    for module in (sys.modules["potstill"], pydantic)
    if module.__file__
)


def user_stacklevel() -> int:
    """The `stacklevel` for `warnings.warn` that names the first caller outside potstill and
    pydantic (the line of user code that built or called the object).

    Returns:
        The stack level, counted from the function that calls `warnings.warn`.
    """
    frame = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_code.co_filename.startswith(_LIBRARY_FOLDERS):
        frame = frame.f_back
        level += 1
    return level
