"""The text of a traceback, formatted on the dispatch thread from a frame-free summary.

:func:`format_summary` prints what :func:`traceback.format_exception` prints for the
summarised exception (without locals): the standard library formats each stack
(:class:`traceback.StackSummary`, carets included); this module lays out the chain's
separators and the boxes of exception groups as :mod:`traceback` does, and says where
the summary left something out.
"""

from __future__ import annotations

import functools
import itertools
import linecache
import sys
import traceback
from collections.abc import Iterator, Sequence
from types import CodeType

from ._fingerprint import exception_name
from ._summary import (
    MAX_GROUP_DEPTH,
    ExceptionPart,
    Frame,
    Group,
    Summary,
    summarize_exception,
)


def _frame_summary(code: CodeType, lasti: int, lineno: int) -> traceback.FrameSummary:
    """The entry :mod:`traceback` makes of a traceback entry, without reading its line."""
    if sys.version_info < (3, 11):  # pragma: no cover - no column positions
        return traceback.FrameSummary(code.co_filename, lineno, code.co_name, lookup_line=False)
    # The positions of the instruction that raised, for the carets: one entry of
    # co_positions() per two-byte instruction (as traceback looks them up).
    first = last = col = end_col = None
    if lasti >= 0:
        first, last, col, end_col = next(
            itertools.islice(code.co_positions(), lasti // 2, None), (None, None, None, None)
        )
    return traceback.FrameSummary(
        code.co_filename,
        lineno if first is None else first,
        code.co_name,
        lookup_line=False,
        end_lineno=last,
        colno=col,
        end_colno=end_col,
    )


def _stack_lines(frames: Sequence[Frame]) -> Sequence[str]:
    if not frames:
        return ()
    # Code objects of two files compare equal when their code does: the filenames are
    # part of the key.
    return _format_stack(tuple(frames), tuple(code.co_filename for code, _, _ in frames))


@functools.lru_cache(maxsize=256)
def _format_stack(frames: tuple[Frame, ...], filenames: tuple[str, ...]) -> tuple[str, ...]:
    """The formatted stack of a code path: a storm of one error formats it once."""
    for filename in set(filenames):
        linecache.checkcache(filename)
    summary = traceback.StackSummary.from_list([_frame_summary(*frame) for frame in frames])
    return tuple(summary.format())


def _part_stack(part: ExceptionPart) -> Sequence[str]:
    frames = part.frames or ()
    if not part.omitted:
        return _stack_lines(frames)
    return [
        *_stack_lines(frames[: part.head]),
        f"  [{part.omitted} frames not shown]\n",
        *_stack_lines(frames[part.head :]),
    ]


class _Printer:
    """Indentation and box drawing of exception groups, as :mod:`traceback` does them."""

    def __init__(self) -> None:
        self.depth = 0
        self.need_close = False

    def indent(self) -> str:
        return " " * (2 * self.depth)

    def emit(self, texts: str | Sequence[str], margin: str = "|") -> Iterator[str]:
        prefix = self.indent() + (f"{margin} " if self.depth else "")
        for text in [texts] if isinstance(texts, str) else texts:
            if not prefix:
                yield text
            else:
                yield "".join(prefix + line for line in text.splitlines(keepends=True))

    def parts(self, parts: tuple[ExceptionPart, ...]) -> Iterator[str]:
        for part in parts:
            if part.separator:
                yield from self.emit(part.separator)
            group = part.group
            if group is None:
                if part.frames or part.omitted:
                    yield from self.emit("Traceback (most recent call last):\n")
                    yield from self.stack(part)
                yield from self.emit(part.text)
            elif group.too_deep:
                yield from self.emit(f"... (max_group_depth is {MAX_GROUP_DEPTH})\n")
            else:
                yield from self.group(part, group)

    def stack(self, part: ExceptionPart) -> Iterator[str]:
        try:
            lines = _part_stack(part)
        except Exception:
            lines = ["  (the stack could not be formatted)\n"]
        yield from self.emit(lines)

    def group(self, part: ExceptionPart, group: Group) -> Iterator[str]:
        toplevel = self.depth == 0
        if toplevel:
            self.depth += 1
        if part.frames or part.omitted:
            yield from self.emit(
                "Exception Group Traceback (most recent call last):\n",
                margin="+" if toplevel else "|",
            )
            yield from self.stack(part)
        yield from self.emit(part.text)
        count = len(group.members) + (1 if group.more else 0)
        self.need_close = False
        for i in range(count):
            last = i == count - 1
            if last:
                self.need_close = True
            title = str(i + 1) if i < len(group.members) else "..."
            corner = "+-" if i == 0 else "  "
            yield f"{self.indent()}{corner}+---------------- {title} ----------------\n"
            self.depth += 1
            if i < len(group.members):
                yield from self.parts(group.members[i])
            else:
                plural = "s" if group.more > 1 else ""
                yield from self.emit(f"and {group.more} more exception{plural}\n")
            if last and self.need_close:
                yield f"{self.indent()}+------------------------------------\n"
                self.need_close = False
            self.depth -= 1
        if toplevel:
            self.depth = 0


def format_summary(summary: Summary) -> str:
    """The text :func:`traceback.format_exception` prints for the summarised exception
    (no locals), with what :func:`summarize_exception` left out said in its place.

    The formatted stack of each code path is cached. Never raises.
    """
    try:
        return "".join(_Printer().parts(summary))
    except Exception:
        return "(the traceback could not be formatted)\n"


def format_traceback(exc: BaseException) -> str:
    """:func:`format_summary` of :func:`summarize_exception`, in one call."""
    try:
        return format_summary(summarize_exception(exc))
    except Exception:
        return f"{exception_name(exc)} (the traceback could not be formatted)\n"


