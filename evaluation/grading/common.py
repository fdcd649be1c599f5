"""What every part of the grader shares: a thread-safe LRU, the two "do not go on" exceptions of
the parsers, and the markers a bounded item returns instead of a result."""

from __future__ import annotations

import threading
from collections import OrderedDict

class _LRU:
    """Thread-safe bounded LRU keyed by strings (or tuples of strings)."""

    def __init__(self, size: int):
        self._d: OrderedDict = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, k, default=None):
        with self._lock:
            if k in self._d:
                self._d.move_to_end(k)
                return self._d[k]
        return default

    def put(self, k, v) -> None:
        with self._lock:
            self._d[k] = v
            self._d.move_to_end(k)
            if len(self._d) > self._size:
                self._d.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._d.clear()


class _Bail(Exception):
    """Outside the mini-parser's grammar: let latex2sympy try."""


class _Refuse(Exception):
    """Too expensive to evaluate: key as an unparsed string."""


_TIMED_OUT = "__timed_out__"  # the item used up its CPU budget (or its worker died)
_REFUSED = "__refused__"  # not attempted: no kill switch for an input that could hang sympy
_UNPARSEABLE = "__unparseable__"  # math-verify found nothing to compare on a side
