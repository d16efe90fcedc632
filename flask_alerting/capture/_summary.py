"""A frame-free, bounded summary of an exception, taken on the request path.

The request path must not keep the exception: its traceback holds every frame of the
request and everything they reference, and keeping that alive until the dispatch thread
runs costs the garbage collector far more than the request path saves (measured: about
a third of an erroring request). So the request path keeps only code objects, instruction
offsets and the messages (:func:`summarize_exception`); the dispatch thread formats the
same text as :func:`traceback.format_exception` from those
(:func:`~flask_alerting.capture.format_summary`).

Both are bounded, whatever the exception: a group of 50 members with 1 MB messages, a
2,000-link cause chain or a 20,000-frame recursion are summarised with at most
:data:`MAX_SUMMARY_EXCEPTIONS` exceptions, :data:`MAX_SUMMARY_FRAMES` frames and
:data:`MAX_SUMMARY_CHARACTERS` characters, and the text says what was left out.

Why not ``traceback.TracebackException(exc, lookup_lines=False)``, which also keeps no
frames? It does its work eagerly and unbounded, on the request path: it looks up every
frame's column positions and stats every source file (``linecache.checkcache``), costing
about 9 times this summary for an ordinary Flask error (measured: 36 µs more per erroring
request captured in full, 7 % of their throughput; 21 % with the alert built); it
follows a cause chain to its end (27 ms for 2,000 links, against 0.5 ms here), visits
every member of an exception group however often it recurs (15 members 12 levels deep:
15 ** 12 visits), keeps every message whole, and keeps either the outermost or the
innermost frames of a deep recursion, not both. Restoring those bounds would take its
private ``_seen`` argument and ``_str`` attribute: this module does the walk itself and
leaves only the formatting of stacks to the standard library.
"""

from __future__ import annotations

import collections
import collections.abc
import itertools
import linecache
import sys
import traceback
from types import CodeType, TracebackType
from typing import Any, NamedTuple

from .._text import exception_text
from ..scrub import cut, safe_repr

#: The ``Type: message`` part of a traceback is cut to this many characters.
MAX_EXCEPTION_TEXT = 10_000
#: Frames kept of one traceback: the outermost and the innermost halves.
MAX_FRAMES = 100
#: Exceptions kept of one ``__cause__``/``__context__`` chain: the first and the last
#: halves (in print order: the root cause first, the exception raised last).
MAX_CHAIN = 20
#: A chain is not followed beyond this many links (a loop-free chain of that length is
#: already absurd; following it costs a pointer chase per link on the request path).
MAX_CHAIN_WALK = 10_000
#: Members shown of one exception group, and nesting depth (the standard library's).
MAX_GROUP_WIDTH = 15
MAX_GROUP_DEPTH = 10
#: What one summary holds at most, whatever the exception: exceptions, frames, and
#: characters of text (messages, notes, separators). The request path copies no more.
MAX_SUMMARY_EXCEPTIONS = 100
MAX_SUMMARY_FRAMES = 500
MAX_SUMMARY_CHARACTERS = 100_000

_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"
_MAX_NOTES = 20
if sys.version_info >= (3, 11):
    _GROUPS: tuple[type[BaseException], ...] = (BaseExceptionGroup,)  # noqa: F821
else:  # pragma: no cover - Python 3.10 has no exception groups
    _GROUPS = ()

#: One traceback entry: code object, instruction offset (``tb_lasti``), line number.
Frame = tuple[CodeType, int, int]


class Group(NamedTuple):
    """The members of an exception group, each summarised with its own chain."""

    members: tuple[tuple[ExceptionPart, ...], ...]
    #: Members not summarised (beyond :data:`MAX_GROUP_WIDTH` or the summary's limits).
    more: int = 0
    #: Nested deeper than :data:`MAX_GROUP_DEPTH`: not summarised at all.
    too_deep: bool = False


class ExceptionPart(NamedTuple):
    """One exception of a chain, without frames or locals."""

    #: Printed before this part (the "direct cause" / "during handling" sentences).
    separator: str | None
    #: The traceback entries kept, outermost first; None when the exception was never
    #: raised.
    frames: tuple[Frame, ...] | None
    #: The ``Type: message`` lines, already cut (or a line saying what was left out).
    text: str
    #: Frames left out between the first ``head`` entries of ``frames`` and the others.
    omitted: int = 0
    head: int = 0
    #: For an exception group, its members.
    group: Group | None = None


#: A frame-free summary: the parts in print order.
Summary = tuple[ExceptionPart, ...]

class _Budget:
    """What a summary may still hold (see :data:`MAX_SUMMARY_EXCEPTIONS` ...)."""

    __slots__ = ("exceptions", "frames", "characters")

    def __init__(self) -> None:
        self.exceptions = MAX_SUMMARY_EXCEPTIONS
        self.frames = MAX_SUMMARY_FRAMES
        self.characters = MAX_SUMMARY_CHARACTERS

    def spent(self) -> bool:
        # A part costs at least a line of text: keep room for the one saying what is left.
        return self.exceptions <= 0 or self.characters < 200


def _exception_only(
    exc: BaseException, message: str | None = None, limit: int = MAX_EXCEPTION_TEXT
) -> str:
    """The ``Type: message`` lines of ``exc`` as :mod:`traceback` prints them, cut to about
    ``limit`` characters before anything long is copied."""
    cls = type(exc)
    if isinstance(exc, SyntaxError):
        text = "".join(traceback.format_exception_only(cls, exc))
    else:
        module = cls.__module__
        name = cls.__qualname__
        if module not in ("__main__", "builtins"):
            name = f"{module if isinstance(module, str) else '<unknown>'}.{name}"
        value = exception_text(exc) if message is None else message
        if len(value) > limit:
            value = cut(value, limit)
        text = f"{name}: {value}\n" if value else f"{name}\n"
        notes = getattr(exc, "__notes__", None)
        if notes is not None:
            text += _notes(notes, limit)
    if len(text) > limit:
        text = cut(text, limit) + "\n"
    return text


def _notes(notes: Any, limit: int) -> str:
    """The ``__notes__`` lines as :mod:`traceback` prints them, at most :data:`_MAX_NOTES`."""
    if not isinstance(notes, collections.abc.Sequence) or isinstance(notes, str):
        return cut(safe_repr(notes), limit)  # traceback prints it so, without a newline
    out: list[str] = []
    try:
        for note in itertools.islice(notes, _MAX_NOTES):
            try:
                text = note if isinstance(note, str) else str(note)
            except Exception:
                text = "<note str() failed>"
            out += [line + "\n" for line in cut(text, limit).split("\n")]
        if len(notes) > _MAX_NOTES:
            out.append(f"[{len(notes) - _MAX_NOTES} more notes not shown]\n")
    except Exception:
        out.append("<__notes__ could not be read>\n")
    return "".join(out)


def _frames(
    tb: TracebackType | None, budget: _Budget
) -> tuple[tuple[Frame, ...] | None, int, int]:
    """The frames kept of ``tb`` (the outermost and innermost halves of at most
    :data:`MAX_FRAMES`), how many were left out between them, and how many of the kept
    frames come before that gap."""
    if tb is None:
        return None, 0, 0
    room = max(0, min(MAX_FRAMES, budget.frames))
    head_room = (room + 1) // 2
    outer: list[TracebackType] = []
    while tb is not None and len(outer) < head_room:
        outer.append(tb)
        tb = tb.tb_next
    # The innermost frames: a bounded deque keeps the last ones of one plain walk.
    inner: collections.deque[TracebackType] = collections.deque(maxlen=room - head_room)
    count = len(outer)
    while tb is not None:
        inner.append(tb)
        count += 1
        tb = tb.tb_next
    frames: list[Frame] = []
    cache = linecache.cache
    for entry in (*outer, *inner):
        frame = entry.tb_frame
        code = frame.f_code
        if code.co_filename not in cache:
            # Lets the dispatch thread find source that is not in a plain file (zip
            # imports), as traceback does with the frame's globals.
            linecache.lazycache(code.co_filename, frame.f_globals)
        frames.append((code, entry.tb_lasti, entry.tb_lineno))
    budget.frames -= len(frames)
    return tuple(frames), count - len(frames), len(outer)


def _chain(
    exc: BaseException, seen: set[int]
) -> tuple[list[tuple[BaseException, str | None]], bool]:
    """``exc`` and its causes / contexts, innermost (printed first) first, each with the
    sentence relating it to the next one; and whether the walk stopped early."""
    chain: list[tuple[BaseException, str | None]] = []  # outermost first
    current: BaseException | None = exc
    relation: str | None = None
    while current is not None:
        if len(chain) >= MAX_CHAIN_WALK:
            break
        seen.add(id(current))
        chain.append((current, relation))
        cause, context = current.__cause__, current.__context__
        if cause is not None and id(cause) not in seen:
            current, relation = cause, _CAUSE
        elif not current.__suppress_context__ and context is not None and id(context) not in seen:
            current, relation = context, _CONTEXT
        else:
            current = None
    chain.reverse()
    return chain, current is not None


def _summarize(
    exc: BaseException, message: str | None, budget: _Budget, seen: set[int], depth: int
) -> tuple[ExceptionPart, ...]:
    chain, stopped = _chain(exc, seen)
    total = len(chain)
    kept = list(range(total))
    if total > MAX_CHAIN:
        kept = [*range(MAX_CHAIN // 2), *range(total - MAX_CHAIN // 2, total)]
    # ``exc`` itself (printed last) first: the budget never leaves it out.
    summarized: dict[int, ExceptionPart] = {}
    for index in (kept[-1], *kept[:-1]):
        if budget.spent():
            break
        item = chain[index][0]
        # The sentence before an exception relates the one printed just above it.
        separator = chain[index - 1][1] if index else None
        budget.exceptions -= 1
        room = max(0, min(MAX_EXCEPTION_TEXT, budget.characters - 200))
        text = _exception_only(item, message if item is exc else None, room)
        budget.characters -= len(text) + len(separator or "")
        frames, omitted, head = _frames(item.__traceback__, budget)
        group = None
        if isinstance(item, _GROUPS):
            group = _group(item, budget, seen, depth)
        summarized[index] = ExceptionPart(separator, frames, text, omitted, head, group)
    parts: list[ExceptionPart] = []
    if stopped:
        text = f"[the chain goes on: not followed beyond {MAX_CHAIN_WALK} exceptions]\n"
        parts.append(ExceptionPart(None, None, text))
    previous = -1
    left_out = 0  # by the budget, since the last part shown
    for index in kept:
        part = summarized.get(index)
        if part is None:
            left_out += 1
            continue
        gap = index - previous - 1 - left_out
        if left_out:
            parts.append(_left_out(left_out, "more exceptions not shown: the alert's size limit"))
        if gap:
            parts.append(_left_out(gap, "exceptions of the chain not shown"))
        parts.append(part)
        previous, left_out = index, 0
    if left_out:
        parts.append(_left_out(left_out, "more exceptions not shown: the alert's size limit"))
    return tuple(parts)


def _left_out(count: int, what: str) -> ExceptionPart:
    return ExceptionPart(None, None, f"\n[{count} {what}]\n")


def _group(group: Any, budget: _Budget, seen: set[int], depth: int) -> Group:
    if depth > MAX_GROUP_DEPTH:
        return Group((), 0, too_deep=True)
    # As traceback prints them: the top-level group at depth 1, its members one deeper.
    member_depth = max(depth, 1) + 1
    members: list[tuple[ExceptionPart, ...]] = []
    exceptions = group.exceptions
    for member in exceptions[:MAX_GROUP_WIDTH]:
        if budget.spent():
            break
        members.append(_summarize(member, None, budget, seen, member_depth))
    return Group(tuple(members), len(exceptions) - len(members))


def summarize_exception(exc: BaseException, message: str | None = None) -> Summary:
    """A frame-free summary of ``exc``, its ``__cause__``/``__context__`` chain and, for
    exception groups, their members.

    Cheap and bounded (request path): no source lines are read and nothing is formatted
    but the ``Type: message`` lines; long tracebacks, chains and groups are cut (see
    :data:`MAX_FRAMES`, :data:`MAX_CHAIN`, :data:`MAX_GROUP_WIDTH`, and the summary's
    limits, :data:`MAX_SUMMARY_EXCEPTIONS` ...).

    :param message: ``str(exc)`` when the caller already has it.
    """
    return _summarize(exc, message, _Budget(), set(), 0)

