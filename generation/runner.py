"""The sharded, resumable generation runner.

Units of work are (problem, sample_idx). Shard i of N takes the problems whose stable hash of
``problem_id`` is i mod N, so any number of workers on any machines split a run without talking
to each other. Before starting, a worker reads which units of the run already have a row without
``error`` in the lake and generates only the rest; rows are written in atomic Parquet parts every
``flush_rows`` samples. A kill loses at most the unflushed rows, which the next start redoes:
no gaps, no duplicates. An errored sample counts as not finished, so a rerun fills it in; the lake
is append-only, so readers take, per (run, problem, sample), the row without error if there is one.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from generation.backends import Backend, Request, SampleResult, make_backend
from generation.config import GenerationConfig
from generation.parsing import split_reasoning
from generation.prompts import HARMONY_FORMATS, PromptRenderer, Rendered, load_tokenizer
from warehouse import db, lake
from warehouse.errors import UserError

Unit = tuple[str, "str | list[dict]"]  # (unit id, problem text or chat messages)


@dataclass
class RunSummary:
    run_id: str
    shard: tuple[int, int]
    problems: int = 0  # problems of the selection in this shard
    units_total: int = 0  # problems x samples in this shard
    units_already_done: int = 0
    samples_written: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    wall_s: float = 0.0
    status: str = "running"
    parts: list[Path] = field(default_factory=list)
    run_throughput: dict = field(default_factory=dict)  # over all sessions and shards, from the lake

    @property
    def samples_per_s(self) -> float:
        return self.samples_written / self.wall_s if self.wall_s else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.wall_s if self.wall_s else 0.0


# ------------------------------------------------------------------------------------ hashing


def stable_hash(text: str) -> int:
    """Same value on every machine and Python run (unlike hash())."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")


def shard_of(problem_id: str, num_shards: int) -> int:
    return stable_hash(problem_id) % num_shards


def base_seed(run_seed: int, problem_id: str) -> int:
    # Room for 2^20 samples per problem under 2^31, so every seed fits an int32 on any server.
    return (stable_hash(f"{run_seed}:{problem_id}") % (2**31 - 2**20)) // 2**10 * 2**10


def sample_seed(config: GenerationConfig, problem_id: str, sample_idx: int) -> int | None:
    if config.sampling.seed_policy == "none":
        return None
    if config.sampling.seed_policy == "sample_idx":
        return config.sampling.seed + sample_idx
    return base_seed(config.sampling.seed, problem_id) + sample_idx


def parse_shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise UserError(f"--shard {text!r}: expected i/N, e.g. 0/4 (shards are numbered from 0)") from None
    if n < 1 or not 0 <= i < n:
        raise UserError(f"--shard {text!r}: need 0 <= i < N")
    return i, n


# ---------------------------------------------------------------------------------- selection


def _sql_str(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def selection_sql(config: GenerationConfig) -> str:
    """The run's problems in a stable order (source, numeric index, id), before sharding."""
    p = config.problems
    where = []
    if p.sources:
        where.append(f"source IN ({', '.join(_sql_str(s) for s in p.sources)})")
    if p.ids:
        where.append(f"problem_id IN ({', '.join(_sql_str(i) for i in p.ids)})")
    if p.filter:
        _check_filter(config)
        where.append(f"({p.filter})")
    sql = (
        "SELECT problem_id, prompt FROM problems"
        + (f" WHERE {' AND '.join(where)}" if where else "")
        + " ORDER BY source, TRY_CAST(regexp_extract(problem_id, ':([0-9]+)$', 1) AS BIGINT) NULLS LAST, problem_id"
    )
    if p.limit is not None:
        sql += f" LIMIT {int(p.limit)}"
    return sql


def _check_filter(config: GenerationConfig) -> None:
    # The filter is the user's own SQL; still allow exactly one boolean expression in one SELECT.
    import duckdb

    try:
        statements = duckdb.extract_statements(f"SELECT 1 FROM problems WHERE ({config.problems.filter})")
    except duckdb.Error as err:
        raise UserError(f"{config.where}: problems.filter: does not parse ({str(err).splitlines()[0]})") from None
    if len(statements) != 1 or statements[0].type.name != "SELECT":
        raise UserError(f"{config.where}: problems.filter: must be one boolean SQL expression")


def _done_sql(run_id: str, n: int) -> str:
    return (
        "SELECT problem_id, list(DISTINCT sample_idx) AS done FROM generations "
        f"WHERE run_id = {_sql_str(run_id)} AND error IS NULL AND sample_idx < {int(n)} GROUP BY problem_id"
    )


def _any_rows_sql(run_id: str, n: int) -> str:
    return (
        "SELECT problem_id, list(DISTINCT sample_idx) AS done FROM generations "
        f"WHERE run_id = {_sql_str(run_id)} AND sample_idx < {int(n)} GROUP BY problem_id"
    )


def _todo_for_problems(con, config: GenerationConfig, shard: tuple[int, int]):
    """(ordered todo list of (problem_id, missing idx), selected problem count in shard, done units)."""
    n = config.samples
    try:
        rows = con.execute(
            f"WITH sel AS (SELECT row_number() OVER () AS ord, problem_id FROM ({selection_sql(config)})), "
            f"done AS ({_done_sql(config.run_id, n)}) "
            "SELECT sel.problem_id, coalesce(done.done, []) FROM sel LEFT JOIN done USING (problem_id) ORDER BY ord"
        ).fetchall()
    except duckdb.Error as err:  # names the bad column/expression
        raise UserError(f"{config.where}: problems: selection query failed: {str(err).splitlines()[0]}") from None
    return _split_todo(rows, n, shard)


def _split_todo(rows, n: int, shard: tuple[int, int]):
    i, num = shard
    todo: list[tuple[str, list[int]]] = []
    problems = done_units = 0
    for problem_id, done in rows:
        if shard_of(problem_id, num) != i:
            continue
        problems += 1
        finished = set(done)
        done_units += len(finished)
        missing = [k for k in range(n) if k not in finished]
        if missing:
            todo.append((problem_id, missing))
    return todo, problems, done_units


# -------------------------------------------------------------------------------------- runner


def preflight(config: GenerationConfig) -> None:
    """Checks with I/O that must pass before any work: the model exists where it is loaded."""
    if config.backend in ("vllm", "transformers"):
        _check_local_model(config, config.model, "model")
    if config.tokenizer:
        _check_local_model(config, config.tokenizer, "tokenizer")


def _check_local_model(config: GenerationConfig, name: str, key: str) -> None:
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists() and not (path / "tokenizer_config.json").exists():
            raise UserError(f"{config.where}: {key}: {path} is a folder but holds no config.json / tokenizer")
        return
    looks_like_repo = name.count("/") == 1 and not name.startswith((".", "/", "~"))
    if looks_like_repo:
        from huggingface_hub import try_to_load_from_cache

        if isinstance(try_to_load_from_cache(name, "config.json"), str):
            return
    raise UserError(f"{config.where}: {key}: {name!r} not found (no such folder"
                    + (", and not in the Hugging Face cache)" if looks_like_repo else ")"))


class _Writer:
    """Turns backend results into lake rows; tracks counts and the progress bar."""

    def __init__(self, config, renderer, writer: lake.PartWriter, bar, summary: RunSummary):
        self.config, self.renderer, self.writer, self.bar, self.summary = config, renderer, writer, bar, summary
        self.prompts: dict[str, list] = {}  # problem_id -> [rendered text, samples outstanding]
        self.reasoning_level = renderer.reasoning_level if renderer is not None else config.reasoning_level
        self.started = time.perf_counter()

    def expect(self, problem_id: str, rendered: Rendered, count: int) -> None:
        self.prompts[problem_id] = [rendered.text, count]

    def __call__(self, result: SampleResult) -> None:
        entry = self.prompts[result.problem_id]
        if result.engine_split:
            reasoning, final = result.reasoning, result.final
        else:
            reasoning, final = split_reasoning(result.completion, result.finish_reason)
        s = self.config.sampling
        self.writer.add({
            "run_id": self.config.run_id,
            "problem_id": result.problem_id,
            "sample_idx": result.sample_idx,
            "model": self.config.model,
            "backend": self.config.backend,
            "reasoning_level": self.reasoning_level,
            "prompt": entry[0],
            "completion": result.completion,
            "reasoning": reasoning,
            "final": final,
            "finish_reason": result.finish_reason,
            "prompt_tokens": result.prompt_tokens,
            "completion_tokens": result.completion_tokens,
            "seed": result.seed,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "max_tokens": s.max_tokens,
            "latency_s": result.latency_s,
            "error": result.error,
            "created_at": result.created_at,
        })
        entry[1] -= 1
        if entry[1] <= 0:
            del self.prompts[result.problem_id]
        summary = self.summary
        summary.samples_written += 1
        summary.errors += result.error is not None
        summary.prompt_tokens += result.prompt_tokens or 0
        summary.completion_tokens += result.completion_tokens or 0
        if self.bar is not None:
            elapsed = max(time.perf_counter() - self.started, 1e-9)
            self.bar.update(1)
            self.bar.set_postfix(
                {"samples/s": f"{summary.samples_written / elapsed:.2f}",
                 "tok/s": f"{summary.completion_tokens / elapsed:.1f}",
                 "errors": summary.errors},
                refresh=False,
            )


def _requests(items: Iterable[tuple[str, str | list, list[int]]], config, renderer, tokenizer, sink: _Writer,
              tokenize: bool) -> Iterator[Request]:
    for problem_id, item, missing in items:
        rendered = renderer.render(item) if renderer is not None else _chat_only(item, config)
        ids = None
        if tokenize:
            ids = tokenizer(rendered.text, add_special_tokens=rendered.add_special_tokens)["input_ids"]
        sink.expect(problem_id, rendered, len(missing))
        seeds = {k: sample_seed(config, problem_id, k) for k in missing}
        yield Request(problem_id, rendered, missing, seeds, ids)


def _chat_only(item, config) -> Rendered:
    from generation.config import render_user_text

    if isinstance(item, str):
        messages = []
        if config.prompt.system:
            messages.append({"role": "system", "content": config.prompt.system})
        messages.append({"role": "user", "content": render_user_text(config.prompt.template, item)})
    else:
        messages = [dict(m) for m in item]
    return Rendered(json.dumps(messages, ensure_ascii=False), messages, add_special_tokens=False)


def _problem_items(con, config, todo: list[tuple[str, list[int]]]):
    """Stream the selection's prompts once, in order, yielding those with missing samples."""
    wanted = dict(todo)
    reader = con.sql(selection_sql(config)).to_arrow_reader(4096)
    for batch in reader:
        ids, prompts = batch.column(0).to_pylist(), batch.column(1).to_pylist()
        for problem_id, prompt in zip(ids, prompts, strict=True):
            missing = wanted.pop(problem_id, None)
            if missing:
                yield problem_id, prompt or "", missing
        if not wanted:
            return


def check_selection(con, config: GenerationConfig, problems: int, shard: tuple[int, int]) -> None:
    """A named source without problems is a mistake (a misspelt or un-ingested source would silently shrink
    the run), and so is an empty selection; one empty shard of many is not."""
    missing = missing_sources(con, config)
    if missing:
        present = [row[0] for row in con.execute("SELECT DISTINCT source FROM problems ORDER BY 1").fetchall()]
        raise UserError(
            f"{config.where}: problems.sources: no problems in the lake for source "
            f"{', '.join(repr(s) for s in missing)} (the lake has: {', '.join(present) or 'no problems'}; "
            "ingest it with --source NAME, or fix the name)"
        )
    if problems == 0 and shard[1] == 1:
        raise UserError(f"{config.where}: problems: the selection is empty (ingest problems first, "
                        "or check problems.sources / ids / filter)")


def missing_sources(con, config: GenerationConfig) -> list[str]:
    """The sources the selection names that have no problem in the lake, in the config's order."""
    wanted = list(dict.fromkeys(str(s) for s in config.problems.sources))
    if not wanted:
        return []
    present = {row[0] for row in con.execute(
        f"SELECT DISTINCT source FROM problems WHERE source IN ({', '.join(_sql_str(s) for s in wanted)})"
    ).fetchall()}
    return [s for s in wanted if s not in present]


def _check_resume(config: GenerationConfig) -> None:
    existing = lake.read_manifest(config.run_id)
    if not existing or not existing.get("config"):
        return
    try:
        old = json.loads(existing["config"])
    except (TypeError, json.JSONDecodeError):
        return
    new = config.to_dict()
    if existing.get("purpose") and existing["purpose"] != config.purpose:
        raise UserError(f"{config.where}: purpose: run {config.run_id} exists with purpose {existing['purpose']!r}")
    for path in (("model",), ("reasoning_level",), ("prompt",), ("sampling", "temperature"), ("sampling", "top_p"),
                 ("sampling", "max_tokens"), ("sampling", "seed"), ("sampling", "seed_policy")):
        a, b = old, new
        for key in path:
            a = a.get(key) if isinstance(a, dict) else None
            b = b.get(key) if isinstance(b, dict) else None
        if a != b:
            raise UserError(
                f"{config.where}: {'.'.join(path)}: run {config.run_id} already has samples made with "
                f"{a!r}, this config says {b!r}; use a new run_id (samples of one run must be alike)"
            )


def run_throughput(run_id: str, con=None) -> dict:
    """Samples, tokens and busy seconds of a run over all its sessions and shards.

    Busy time is the union of the intervals [created_at - latency_s, created_at] of its rows, so
    concurrent requests are not double counted and pauses between sessions are not counted.
    """
    con = con or db.connect(marts=False)
    row = con.execute(THROUGHPUT_SQL.replace("$RUN", _sql_str(run_id))).fetchone()
    if row is None:
        return {"samples": 0, "completion_tokens": 0, "busy_s": 0.0, "tokens_per_s": None, "samples_per_s": None}
    _, samples, tokens, busy = row
    busy = float(busy or 0.0)
    return {
        "samples": int(samples or 0),
        "completion_tokens": int(tokens or 0),
        "busy_s": busy,
        "tokens_per_s": (tokens or 0) / busy if busy else None,
        "samples_per_s": (samples or 0) / busy if busy else None,
    }


# Also documented in generation/README.md for `reasonlite sql` (there without the run filter).
THROUGHPUT_SQL = """
WITH iv AS (
  SELECT run_id, completion_tokens,
         epoch(created_at) - coalesce(latency_s, 0) AS t0, epoch(created_at) AS t1
  FROM generations WHERE run_id = $RUN AND error IS NULL
), marked AS (
  SELECT *, CASE WHEN t0 > max(t1) OVER (PARTITION BY run_id ORDER BY t0, t1
                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) THEN 1 ELSE 0 END AS new_island
  FROM iv
), islands AS (
  SELECT *, sum(new_island) OVER (PARTITION BY run_id ORDER BY t0, t1) AS island FROM marked
), spans AS (
  SELECT run_id, island, max(t1) - min(t0) AS span FROM islands GROUP BY run_id, island
)
SELECT i.run_id, count(*) AS samples, sum(i.completion_tokens) AS completion_tokens,
       (SELECT sum(span) FROM spans s WHERE s.run_id = i.run_id) AS busy_s
FROM iv i GROUP BY i.run_id
"""


def _manifest_fields(config: GenerationConfig, renderer, selection: dict) -> dict:
    return dict(
        purpose=config.purpose,
        model=config.model,
        backend=config.backend,
        reasoning_level=renderer.reasoning_level if renderer is not None else config.reasoning_level,
        n_samples=config.samples,
        temperature=config.sampling.temperature,
        top_p=config.sampling.top_p,
        max_tokens=config.sampling.max_tokens,
        prompt_template=config.prompt.template,
        problem_selection=selection,
        config={**config.to_dict(), "prompt_format": renderer.format if renderer is not None else "chat-api"},
        code_version=lake.code_version(),
    )


def run_generation(
    config: GenerationConfig,
    shard: tuple[int, int] = (0, 1),
    units: Sequence[Unit] | None = None,
    engine: Backend | None = None,
    progress: bool | None = None,
) -> RunSummary:
    """Generate the run's missing samples for one shard; returns what this call did.

    ``units``: explicit (unit_id, text or messages) instead of problems from the lake (LLM judge,
    ad-hoc prompts); rows get ``problem_id = unit_id``. ``engine``: an already started backend
    for the same model, reused across runs (one vLLM engine per process).

    One worker per (run, shard): a second one (a requeued job while the first still runs) exits
    at once with a line naming the holder, instead of sampling every missing unit a second time.
    """
    lake.check_name(config.run_id, f"{config.where}: run_id")
    with lake.partition_lock("generations", {"run_id": config.run_id, "shard": shard[0]}, wait=False):
        return _run_generation(config, shard, units, engine, progress)


def _run_generation(config: GenerationConfig, shard: tuple[int, int], units: Sequence[Unit] | None,
                    engine: Backend | None, progress: bool | None) -> RunSummary:
    summary = RunSummary(config.run_id, shard)
    if engine is None:
        preflight(config)
    _check_resume(config)
    chat_api = config.backend == "openai" and config.openai.api == "chat"
    tokenizer = load_tokenizer(config, required=config.backend != "openai")
    renderer = None if chat_api else PromptRenderer(config, tokenizer)
    if config.backend == "openai" and not chat_api and tokenizer is None and renderer.format not in (*HARMONY_FORMATS, "raw"):
        raise UserError(f"{config.where}: openai.api: completions needs a local tokenizer (set tokenizer: to the "
                        "model folder) to render the chat template; or use openai.api: chat")

    con = db.connect(marts=False)
    if units is not None:
        ids = [u[0] for u in units]
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise UserError(f"units: unit id {dup!r} appears more than once")
        done = dict(con.execute(_done_sql(config.run_id, config.samples)).fetchall())
        rows = [(uid, done.get(uid, [])) for uid in ids]
        todo, summary.problems, summary.units_already_done = _split_todo(rows, config.samples, shard)
        by_id = dict(units)
        items = ((uid, by_id[uid], missing) for uid, missing in todo)
        selection = {"units": len(ids), "shard": list(shard)}
    else:
        todo, summary.problems, summary.units_already_done = _todo_for_problems(con, config, shard)
        items = _problem_items(con, config, todo)
        selection = {**config.to_dict()["problems"], "shard": list(shard)}
        check_selection(con, config, summary.problems, shard)
    summary.units_total = summary.problems * config.samples
    todo_units = sum(len(m) for _, m in todo)

    backend = engine
    if backend is None:
        backend = make_backend(config, renderer, tokenizer)
        if todo_units:
            backend.start()
    else:
        if engine.config.model != config.model:
            raise UserError(f"engine serves {engine.config.model!r}, config asks for {config.model!r}")
        backend.config, backend.renderer, backend.tokenizer = config, renderer, tokenizer

    manifest = _manifest_fields(config, renderer, selection)

    def start_run() -> None:  # once the first part is written: a run that wrote nothing has no manifest
        lake.write_manifest(config.run_id, status="running", finished_at=None, **manifest)

    bar = None
    if progress is None:
        progress = True
    if progress and todo_units:
        from tqdm import tqdm

        bar = tqdm(total=todo_units, unit="sample", desc=f"generate {config.run_id} shard {shard[0]}/{shard[1]}",
                   file=sys.stderr, mininterval=0.5 if sys.stderr.isatty() else 30, dynamic_ncols=True)
    started = time.perf_counter()
    writer = lake.PartWriter("generations", flush_rows=config.flush_rows, defaults={"shard": shard[0]},
                             after_first_part=start_run)
    sink = _Writer(config, renderer, writer, bar, summary)
    tokenize = tokenizer is not None and not chat_api
    try:
        with writer:
            if todo_units:
                backend.generate(_requests(items, config, renderer, tokenizer, sink, tokenize), sink)
    except BaseException:
        summary.status = "failed"
        summary.wall_s = time.perf_counter() - started
        if lake.read_manifest(config.run_id) is not None:
            lake.write_manifest(config.run_id, status="failed")
        raise
    finally:
        if bar is not None:
            bar.close()
        if engine is None:
            backend.close()
    summary.wall_s = time.perf_counter() - started
    summary.parts = list(writer.parts)

    # The run (all shards) is complete when every unit of the selection has a row; errored rows
    # count here (a prompt over the context will never succeed) and a rerun retries them.
    con = db.connect(marts=False)
    if units is not None:
        have = dict(con.execute(_any_rows_sql(config.run_id, config.samples)).fetchall())
        complete = all(len(set(have.get(uid, []))) >= config.samples for uid in (u[0] for u in units))
    else:
        rows = con.execute(
            f"WITH sel AS ({selection_sql(config)}), have AS ({_any_rows_sql(config.run_id, config.samples)}) "
            "SELECT count(*) FILTER (WHERE coalesce(len(have.done), 0) < "
            f"{int(config.samples)}) FROM sel LEFT JOIN have USING (problem_id)"
        ).fetchone()
        complete = rows[0] == 0
    summary.run_throughput = run_throughput(config.run_id, con)
    summary.status = "complete" if complete else "running"
    fields = {"status": summary.status}
    if complete:
        fields["finished_at"] = lake.now_utc().isoformat()
        fields.update(tokens_per_s=summary.run_throughput["tokens_per_s"],
                      samples_per_s=summary.run_throughput["samples_per_s"])
    # Rows in the lake (this session's, earlier ones', or a killed session's before its manifest): say so.
    if writer.parts or summary.units_already_done or lake.read_manifest(config.run_id) is not None:
        lake.write_manifest(config.run_id, **manifest, **fields)
    return summary
