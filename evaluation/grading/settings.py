"""The grader's knobs: time budget, size limits, cache sizes, parallelism. Read from the
environment once at import; change them at run time on ``evaluation.grading`` (for example
``grading.TIMEOUT_S = 5``), which forwards to this module, where every part reads them at call time."""

from __future__ import annotations

import os

def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


TIMEOUT_S: float = _env_float("REASONLITE_GRADER_TIMEOUT", 1.0)  # worker CPU seconds per call / item
WALL_SAFETY_S: float = _env_float("REASONLITE_GRADER_WALL_SAFETY", 60.0)  # a hung worker, not a slow one
ISOLATION: str = os.environ.get("REASONLITE_GRADER_ISOLATION", "process")  # "process" | "inline"
MAX_ANSWER_CHARS = 1000  # longer answers are keyed by hash and never parsed
MAX_BRACE_DEPTH = 30
MAX_VERIFY_CHARS = 20_000  # math-verify sees at most the tail of a solution
MAX_SCAN_CHARS = 100_000  # boxes and "answer is" markers are looked for in the tail
MAX_RESULT_DIGITS = 10_000  # refuse numbers whose exact value would be larger
CACHE_SIZE = 100_000  # entries per cache (keys by answer string, verdicts by pair)
MV_PARSE_CACHE_SIZE = 20_000  # math-verify parses kept per worker process
PARALLEL_MIN = 48  # symbolic items in one batch before fanning out to several workers
MAX_WORKERS = max(1, min(8, os.cpu_count() or 1))
FLOAT_PLACES = 6
# A decimal with >= 2 places that is an exact answer rounded as written (0.33 for 1/3, 3.14 for pi,
# 1.41 for sqrt 2) is equal to it only when this is on. Off: a label is exact, and a rounded
# answer is another number (curation keeps exact solutions; evaluation grades through the same
# SQL functions, so it is off there too). Decimals within 6 places stay equal either way.
ROUNDED_DECIMALS_MATCH_EXACT: bool = os.environ.get("REASONLITE_GRADER_ROUNDED_DECIMALS", "0") == "1"
