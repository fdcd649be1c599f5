"""OpenAI-compatible servers (``vllm serve``, SGLang, …): async, bounded concurrency, several
endpoints with load spreading, bounded retries with exponential backoff.

One request per sample (n=1, seed = the sample's seed), so a failure costs one sample and each
sample is retried on its own. Retried: 429, 5xx, timeouts, dropped connections, malformed JSON.
Not retried: other 4xx (the request itself is wrong, e.g. a prompt over the context). A sample
that still fails after ``max_retries`` is written with ``error`` set — never dropped, never
retried forever — and a later ``generate`` run fills it in.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time
from collections.abc import Iterable

import httpx

from generation.backends.base import Backend, Request, SampleResult, Sink, too_long_error
from warehouse import lake
from warehouse.errors import UserError

RETRY_STATUS = {408, 409, 425, 429}  # plus every 5xx


class _Retryable(Exception):
    def __init__(self, kind: str, retry_after: float | None = None):
        super().__init__(kind)
        self.kind = kind
        self.retry_after = retry_after


class _Fatal(Exception):
    pass


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


class OpenAIBackend(Backend):
    name = "openai"

    def __init__(self, config, renderer, tokenizer):
        self.config = config
        self.renderer = renderer
        self.tokenizer = tokenizer
        self.endpoints: list[str] = []
        self.served_model: str | None = None
        self.max_model_len: int | None = None
        self.in_flight: dict[str, int] = {}
        self.penalty_until: dict[str, float] = {}
        self.stats = {"requests": 0, "retries": 0, "failed_samples": 0}

    # ------------------------------------------------------------------ setup
    def _headers(self) -> dict:
        key_env = self.config.openai.api_key_env
        if key_env:
            key = os.environ.get(key_env)
            if not key:
                raise UserError(f"{self.config.where}: openai.api_key_env: environment variable {key_env} is not set")
            return {"Authorization": f"Bearer {key}"}
        return {}

    def _scrub(self, text: str) -> str:
        """A server may echo the Authorization header in its error; the key must not reach the lake."""
        key_env = self.config.openai.api_key_env
        key = os.environ.get(key_env) if key_env else None
        return text.replace(key, "***") if key else text

    def start(self) -> None:
        """Probe every endpoint's /models before any work; drop (with a warning) those that are down."""
        o = self.config.openai
        reachable, problems = [], []
        models_seen: dict[str, dict] = {}
        timeout = httpx.Timeout(o.connect_timeout_s)
        with httpx.Client(timeout=timeout, headers=self._headers()) as client:
            for base in o.endpoints:
                base = base.rstrip("/")
                try:
                    response = client.get(f"{base}/models")
                    response.raise_for_status()
                    listed = {m["id"]: m for m in response.json().get("data", [])}
                except httpx.HTTPStatusError as err:
                    problems.append(f"{base}: HTTP {err.response.status_code}")
                    continue
                except httpx.HTTPError as err:
                    problems.append(f"{base}: {type(err).__name__}")
                    continue
                except (ValueError, KeyError, TypeError, AttributeError):
                    problems.append(f"{base}: /models did not return an OpenAI model list")
                    continue
                if o.served_model and o.served_model not in listed:
                    problems.append(f"{base}: does not serve {o.served_model!r} (serves {', '.join(listed) or 'nothing'})")
                    continue
                reachable.append(base)
                models_seen[base] = listed
        if not reachable:
            raise UserError(f"{self.config.where}: openai.endpoints: no endpoint is usable: {'; '.join(problems)}")
        for problem in problems:
            print(f"generate: warning: skipping endpoint {problem}", file=sys.stderr)
        self.endpoints = reachable
        first = models_seen[reachable[0]]
        self.served_model = o.served_model or next(iter(first), None)
        if self.served_model is None:
            raise UserError(f"{self.config.where}: openai: {reachable[0]} serves no model")
        # vLLM reports its context length; then an over-long prompt fails here, not on the server.
        lengths = [m.get(self.served_model, {}).get("max_model_len") for m in models_seen.values()]
        lengths = [n for n in lengths if isinstance(n, int)]
        self.max_model_len = min(lengths) if lengths else None
        self.in_flight = {e: 0 for e in self.endpoints}
        self.penalty_until = {e: 0.0 for e in self.endpoints}

    # ------------------------------------------------------------------ run
    def generate(self, requests: Iterable[Request], sink: Sink) -> None:
        asyncio.run(self._run(requests, sink))

    async def _run(self, requests: Iterable[Request], sink: Sink) -> None:
        o = self.config.openai
        limits = httpx.Limits(max_connections=o.concurrency, max_keepalive_connections=o.concurrency)
        timeout = httpx.Timeout(o.timeout_s, connect=o.connect_timeout_s)
        slots = asyncio.Semaphore(o.concurrency)
        tasks: set[asyncio.Task] = set()
        async with httpx.AsyncClient(timeout=timeout, limits=limits, headers=self._headers()) as client:
            for req in requests:  # pulled lazily: only `concurrency` samples are in flight
                for idx in req.sample_indices:
                    await slots.acquire()
                    task = asyncio.create_task(self._sample(client, req, idx, sink))
                    tasks.add(task)
                    task.add_done_callback(lambda t: (tasks.discard(t), slots.release()))
            if tasks:
                await asyncio.gather(*tasks)

    def _pick(self, avoid: str | None) -> str:
        """Least-loaded endpoint, preferring ones that did not just fail."""
        now = time.monotonic()
        candidates = [e for e in self.endpoints if e != avoid] or self.endpoints
        healthy = [e for e in candidates if self.penalty_until[e] <= now] or candidates
        least = min(self.in_flight[e] for e in healthy)
        return random.choice([e for e in healthy if self.in_flight[e] == least])

    def _body(self, req: Request, idx: int) -> tuple[str, dict]:
        s, o = self.config.sampling, self.config.openai
        max_tokens = s.max_tokens
        if self.max_model_len and req.prompt_ids is not None:
            max_tokens = min(max_tokens, self.max_model_len - len(req.prompt_ids))
        body = {"model": self.served_model, "max_tokens": max_tokens, "temperature": s.temperature,
                "top_p": s.top_p, "n": 1}
        seed = req.seeds.get(idx)
        if seed is not None:
            body["seed"] = seed
        if o.api == "chat":
            body["messages"] = req.rendered.messages
            if self.config.reasoning_level in ("low", "medium", "high"):
                body["reasoning_effort"] = self.config.reasoning_level  # the server renders Harmony
            path = "/chat/completions"
        else:
            body["prompt"] = req.rendered.text
            if not req.rendered.add_special_tokens:
                body["add_special_tokens"] = False  # vLLM: the chat template already put BOS in
            if not self.renderer.skip_special_tokens():
                body["skip_special_tokens"] = False  # vLLM / SGLang: keep Harmony channel markers
            path = "/completions"
        body.update(o.extra_body)
        return path, body

    async def _sample(self, client: httpx.AsyncClient, req: Request, idx: int, sink: Sink) -> None:
        o = self.config.openai
        seed = req.seeds.get(idx)
        prompt_tokens = len(req.prompt_ids) if req.prompt_ids is not None else None
        if self.max_model_len and prompt_tokens is not None and prompt_tokens >= self.max_model_len:
            sink(SampleResult(req.problem_id, idx, error=too_long_error(prompt_tokens, self.max_model_len),
                              prompt_tokens=prompt_tokens, seed=seed))
            return
        path, body = self._body(req, idx)
        avoid = None
        last = "unknown"
        for attempt in range(o.max_retries + 1):
            endpoint = self._pick(avoid)
            self.in_flight[endpoint] += 1
            self.stats["requests"] += 1
            started = time.perf_counter()
            try:
                result = await self._post(client, endpoint + path, body)
            except _Retryable as err:
                last = err.kind
                avoid = endpoint
                if attempt == o.max_retries:
                    break
                self.stats["retries"] += 1
                delay = min(o.backoff_max_s, o.backoff_s * 2**attempt) * random.uniform(0.5, 1.0)
                if err.retry_after is not None:
                    delay = min(o.backoff_max_s, max(delay, err.retry_after))
                self.penalty_until[endpoint] = time.monotonic() + delay
                await asyncio.sleep(delay)
                continue
            except _Fatal as err:
                sink(SampleResult(req.problem_id, idx, error=str(err), seed=seed, prompt_tokens=prompt_tokens,
                                  latency_s=time.perf_counter() - started))
                self.stats["failed_samples"] += 1
                return
            finally:
                self.in_flight[endpoint] -= 1
            result.update(problem_id=req.problem_id, sample_idx=idx, seed=seed,
                          latency_s=time.perf_counter() - started, created_at=lake.now_utc())
            if result.get("prompt_tokens") is None:
                result["prompt_tokens"] = prompt_tokens
            sink(SampleResult(**result))
            return
        self.stats["failed_samples"] += 1
        sink(SampleResult(req.problem_id, idx, error=f"{last} (gave up after {o.max_retries + 1} attempts)",
                          seed=seed, prompt_tokens=prompt_tokens))

    async def _post(self, client: httpx.AsyncClient, url: str, body: dict) -> dict:
        try:
            response = await client.post(url, json=body)
        except httpx.TimeoutException:
            raise _Retryable("timeout") from None
        except httpx.TransportError as err:  # refused, reset, closed mid-response
            raise _Retryable(f"connection_error: {type(err).__name__}") from None
        status = response.status_code
        if status in RETRY_STATUS or status >= 500:
            raise _Retryable(f"http_{status}", _retry_after(response))
        if status != 200:
            raise _Fatal(f"http_{status}: {self._scrub(response.text.strip())[:500]}")
        try:
            data = response.json()
            choice = data["choices"][0]
            usage = data.get("usage") or {}
            out = {
                "finish_reason": choice.get("finish_reason"),
                "prompt_tokens": usage.get("prompt_tokens"),
                "completion_tokens": usage.get("completion_tokens"),
            }
            if "message" in choice:
                message = choice["message"]
                content = message.get("content") or ""
                reasoning = message.get("reasoning_content") or message.get("reasoning")
                out["completion"] = content
                if reasoning is not None:  # the server split the channels already
                    out.update(reasoning=reasoning, final=content or None, engine_split=True)
            else:
                out["completion"] = choice["text"]
            if not isinstance(out["completion"], str):
                raise TypeError("completion is not text")
            return out
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            # A proxy that cut the body, or a server bug: worth another try.
            raise _Retryable("malformed_response") from None
