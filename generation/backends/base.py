"""What the runner hands a backend, and what a backend hands back for each sample."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice

from generation.prompts import Rendered
from warehouse import lake


@dataclass
class Request:
    """One prompt and the sample indices still missing for it (with their seeds)."""

    problem_id: str
    rendered: Rendered
    sample_indices: list[int]
    seeds: dict[int, int | None]  # sample_idx -> seed (None: engine randomness)
    prompt_ids: list[int] | None = None  # token ids, where a local tokenizer exists


@dataclass
class SampleResult:
    problem_id: str
    sample_idx: int
    completion: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float | None = None
    error: str | None = None
    seed: int | None = None
    # Set only when the engine already separated them (chat API reasoning_content).
    reasoning: str | None = None
    final: str | None = None
    engine_split: bool = False
    created_at: datetime = field(default_factory=lake.now_utc)


Sink = Callable[[SampleResult], None]


class Backend:
    name = "base"

    def start(self) -> None:
        """Load the engine / check the servers. Errors here are configuration errors."""

    def generate(self, requests: Iterable[Request], sink: Sink) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


def batched(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def contiguous_runs(indices: list[int]) -> list[tuple[int, int]]:
    """[0,1,2,5,6] -> [(0,3),(5,2)]: (start, count) runs, so n samples go in one request."""
    runs: list[tuple[int, int]] = []
    for idx in sorted(indices):
        if runs and runs[-1][0] + runs[-1][1] == idx:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((idx, 1))
    return runs


def too_long_error(prompt_tokens: int, max_len: int) -> str:
    return f"prompt_too_long: {prompt_tokens} prompt tokens leave no room in the {max_len}-token context"


def error_results(request: Request, message: str, prompt_tokens: int | None = None) -> list[SampleResult]:
    return [
        SampleResult(request.problem_id, idx, error=message, prompt_tokens=prompt_tokens, seed=request.seeds.get(idx))
        for idx in request.sample_indices
    ]
