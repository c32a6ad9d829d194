"""What the user must fix, as opposed to a bug.

``ctglip`` prints a :class:`CtglipError` as one red line and exits 2; any other exception
is a bug and keeps its traceback (exit 3). So raise :class:`InputError` for a bad input
file or data (the message starts with the file's path) and :class:`SetupError` for
everything around the data: a missing upstream output or weights, a bad option, an output
folder that is another's or locked, a full disk. A plain ``ValueError`` deep in a stage
means ctglip itself is wrong.
"""
from __future__ import annotations

import errno
import re
from collections.abc import Iterator
from contextlib import contextmanager


class CtglipError(Exception):
    """Something the user must fix; the message says what and where."""


class InputError(CtglipError, ValueError):
    """A bad input file or record; the message starts with its path.

    Also a ``ValueError`` so the per-item handlers that let one bad scan fail alone keep
    catching it.
    """


class SetupError(CtglipError):
    """The run cannot start or go on: missing upstream output or weights, bad options,
    a foreign or locked output folder, no space left. Never caught per item."""


class NoSpaceLeft(SetupError):
    """The disk filled up while writing a file (nothing half-written is left behind)."""


_SHORT_WRITE = re.compile(r"\d+ requested and \d+ written")


def is_no_space(error: BaseException) -> bool:
    """Whether ``error`` is the OS saying the disk (or quota) is full.

    Some writers report only the short write: ``np.save`` ("N requested and M written",
    an OSError without errno) and ``torch.save`` ("unexpected pos N vs M").
    """
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(error)
    if "No space left on device" in text or "Disk quota exceeded" in text:
        return True
    if isinstance(error, OSError) and error.errno is None:
        return _SHORT_WRITE.search(text) is not None
    return isinstance(error, RuntimeError) and "unexpected pos" in text


def no_space(path: object) -> NoSpaceLeft:
    """The :class:`NoSpaceLeft` to raise when writing ``path`` filled the disk."""
    return NoSpaceLeft(f"no space left writing {path}; free some space and rerun the same command "
                       "(finished items are kept)")


@contextmanager
def no_space_is_setup_error(path: object) -> Iterator[None]:
    """Turn a full disk while writing ``path`` into :class:`NoSpaceLeft` (exit 2, one line)."""
    try:
        yield
    except (OSError, RuntimeError) as error:
        if is_no_space(error):
            raise no_space(path) from error
        raise
