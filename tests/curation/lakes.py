"""Lakes for the curation tests and benchmark, written with the real lake writer (warehouse.lake).

``scenario_lake`` is small and hand-made: every problem exercises one curation rule, and
``EXPECTED`` says what the marts must say about it. ``synthetic_lake`` is big and regular, for
timing the SQL stages.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from warehouse import lake

INSTRUCTION = "\nPlease reason step by step, and put your final answer within \\boxed{}."
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def harmony_prompt(problem: str, level: str) -> str:
    """The gpt-oss prompt as upstream renders it: system + developer wrapper around the user turn."""
    return (
        "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\n"
        f"Knowledge cutoff: 2024-06\n\nreasoning: {level}\n\n# Valid channels: analysis, commentary, final."
        "<|end|><|start|>developer<|message|><|end|><|start|>user<|message|>"
        f"{problem}{INSTRUCTION}<|end|><|start|>assistant"
    )


def harmony_completion(reasoning: str | None, final: str | None) -> str:
    text = ""
    if reasoning is not None:
        text += f"<|channel|>analysis<|message|>{reasoning}<|end|>"
    if final is not None:
        text += f"<|start|>assistant<|channel|>final<|message|>{final}<|return|>"
    return text


def query_marts(sql: str) -> list[tuple]:
    """Rows of ``sql`` on the published marts, read-only (as any reader would)."""
    import duckdb

    con = duckdb.connect(str(lake.database_path()), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def write_problems(rows: list[dict]) -> None:
    by_source: dict[str, list[dict]] = {}
    for row in rows:
        by_source.setdefault(row["source"], []).append(row)
    for source, items in by_source.items():
        lake.write_part("problems", pa.Table.from_pylist(items, schema=lake.PROBLEMS_SCHEMA), {"source": source})


def write_generations(rows: list[dict], shard: int = 0) -> None:
    by_run: dict[str, list[dict]] = {}
    for row in rows:
        by_run.setdefault(row["run_id"], []).append(row)
    for run_id, items in by_run.items():
        table = pa.Table.from_pylist(
            [{f.name: r.get(f.name) for f in lake.GENERATIONS_SCHEMA} for r in items], schema=lake.GENERATIONS_SCHEMA
        )
        lake.write_part("generations", table, {"run_id": run_id, "shard": shard})


def write_run(run_id: str, level: str, purpose: str = "teacher", model: str = "gpt-oss-120b") -> None:
    lake.write_manifest(run_id, purpose=purpose, model=model, backend="vllm", reasoning_level=level,
                        n_samples=8, temperature=0.8, top_p=1.0, max_tokens=30000, status="complete")


def sample(run_id: str, problem_id: str, idx: int, level: str, problem: str, *, answer: str | None = None,
           final: str | None = "", reasoning: str | None = "", error: str | None = None,
           finish_reason: str = "stop", completion: str | None = "", created: int = 0,
           tokens: int | None = None) -> dict:
    """One generation row. By default a well-formed Harmony sample whose final boxes `answer`."""
    if reasoning == "":
        reasoning = f"Working on {problem_id} (sample {idx}, {level}). Let me compute carefully."
    if final == "":
        final = f"The answer is $\\boxed{{{answer}}}$." if answer is not None else None
    if completion == "":
        completion = harmony_completion(reasoning, final) if error is None else None
    return {
        "run_id": run_id, "problem_id": problem_id, "sample_idx": idx, "model": "gpt-oss-120b",
        "backend": "vllm", "reasoning_level": level, "prompt": harmony_prompt(problem, level),
        "completion": completion, "reasoning": reasoning, "final": final, "finish_reason": finish_reason,
        "prompt_tokens": 120, "completion_tokens": tokens if tokens is not None else (400 if level == "medium" else 1500),
        "seed": idx, "temperature": 0.8, "top_p": 1.0, "max_tokens": 30000, "latency_s": 1.0,
        "error": error, "created_at": T0 + timedelta(minutes=created),
    }


def read_benchmark(benchmarks_dir: Path, name: str) -> list[dict]:
    with open(benchmarks_dir / f"{name}.jsonl") as f:
        return [json.loads(line) for line in f if line.strip()]


@dataclass
class Scenario:
    problems: dict[str, dict] = field(default_factory=dict)  # problem_id -> problem row
    aime: list[dict] = field(default_factory=list)


def scenario_lake(benchmarks_dir: Path) -> Scenario:
    """Two teacher runs (medium / high) over hand-made problems; see EXPECTED for the verdicts."""
    aime = read_benchmark(benchmarks_dir, "aime24")
    write_problems([
        {"problem_id": f"aime24:{i}", "source": "aime24", "prompt": row["problem"], "expected_answer": row["answer"]}
        for i, row in enumerate(aime)
    ])
    texts = {
        "half": "What is one divided by two?",
        "wrong_label": "What is three plus four?",
        "no_label": "What is three times four?",
        "split": "A hard question with two plausible answers.",
        "none": "An unlabeled question the teacher cannot agree on.",
        "eighty": "A question where eight of ten samples agree.",
        # The aime24-0 problem with different case, spacing and punctuation: an exact contamination.
        "copy_exact": "  " + aime[0]["problem"].upper().replace(" ", "  ") + " !",
        # A long stretch of aime24-1 inside a new problem: an n-gram contamination.
        "copy_ngram": "Consider this. " + " ".join(aime[1]["problem"].split()[5:40]) + " Answer in words.",
        "bad_data": "A question whose samples are all broken in different ways.",
    }
    labels = {"half": "1/2", "wrong_label": "5", "no_label": None, "split": "3", "none": None,
              "eighty": "9", "copy_exact": "204", "copy_ngram": "25", "bad_data": "6"}
    problems = {}
    for name, text in texts.items():
        pid = f"train:{name}"
        problems[pid] = {"problem_id": pid, "source": "train", "prompt": text, "expected_answer": labels[name],
                         "difficulty": None, "metadata": None}
    write_problems(list(problems.values()))

    med, high = "teacher-medium", "teacher-high"
    write_run(med, "medium")
    write_run(high, "high")
    rows: list[dict] = []

    def add(run, pid, answers, start=0, **kw):
        level = "medium" if run == med else "high"
        for k, a in enumerate(answers):
            rows.append(sample(run, pid, start + k, level, texts[pid.split(":", 1)[1]], answer=a, **kw))

    # 1/2 in many surface forms: one key; the display form is the most frequent one.
    add(med, "train:half", ["\\frac{1}{2}"] * 4 + ["0.5", "0.5", "1/2", "\\frac{1}{2}"])
    add(high, "train:half", ["\\dfrac{1}{2}", "\\frac{1}{2}", "0.50"])
    rows.append(sample(high, "train:half", 3, "high", texts["half"], answer=None, final=None,
                       finish_reason="length"))  # truncated mid-thought
    # The dataset label is wrong; the teacher agrees on 7 unanimously.
    add(med, "train:wrong_label", ["7"] * 5)
    add(high, "train:wrong_label", ["7"] * 5)
    # No dataset label; the vote supplies it.
    add(med, "train:no_label", ["12"] * 6)
    # 5 vs 3: not confident, the dataset label 3 stands; the 4s are inconsistent.
    add(med, "train:split", ["3"] * 5 + ["4"] * 3)
    # No dataset label and a 2/2 split (plus an answer the grader cannot parse): no label at all.
    add(med, "train:none", ["1", "1", "2", "2", "a @ b"])
    # 8 of 10 say 10, the dataset says 9: label 9 at vote_ratio 0.9, 10 at 0.8.
    add(med, "train:eighty", ["10"] * 8 + ["9"] * 2)
    # Contaminated problems: consistent samples that must still not reach sft_examples.
    add(med, "train:copy_exact", ["204"] * 4)
    add(med, "train:copy_ngram", ["25"] * 4)
    # Duplicate text: sample 9 of "half" repeats sample 0 exactly (reasoning + final).
    dup = sample(med, "train:half", 9, "medium", texts["half"], answer="\\frac{1}{2}")
    dup["reasoning"] = rows[0]["reasoning"]
    dup["final"], dup["completion"] = rows[0]["final"], rows[0]["completion"]
    rows.append(dup)

    # Broken samples, one per rule (all on bad_data, label 6).
    bad = "train:bad_data"
    text = texts["bad_data"]
    rows += [
        sample(med, bad, 0, "medium", text, answer="6", error="engine: CUDA out of memory"),  # error
        sample(med, bad, 1, "medium", text, answer="6", completion=None, reasoning=None, final=None),  # null completion
        sample(med, bad, 2, "medium", text, answer=None, final="I think it is 6."),  # no \boxed
        sample(med, bad, 3, "medium", text, answer="6", reasoning=None),  # no reasoning channel
        sample(med, bad, 4, "medium", text, answer="6", final=None, finish_reason="length"),  # truncated
        sample(med, bad, 5, "medium", text, answer=None,  # an empty box: the grader finds no answer
               final="\\boxed{} is what I would write, but I am not sure about any of this at all."),
        sample(med, bad, 6, "medium", text, answer="6"),  # fine
        sample(med, bad, 7, "medium", text, answer="6"),  # fine
        sample(med, bad, 8, "medium", text, answer="6"),  # fine
        sample(med, bad, 9, "medium", text, answer="6"),  # fine
    ]
    # A problem id the lake does not know.
    rows.append(sample(med, "train:ghost", 0, "medium", "ghost", answer="1"))
    write_generations(rows)

    # Append-only repairs and repeats, in later parts:
    # sample 0 of bad_data errored; a rerun filled it (later, no error) -> the filled row wins.
    fixed = sample(med, bad, 0, "medium", text, answer="6", created=10)
    # sample 1 of "split" imported twice (identical row) -> one sample, one duplicate row.
    repeat = sample(med, "train:split", 1, "medium", texts["split"], answer="3")
    # sample 2 of "no_label" got a later row that errored -> the earlier good row still wins.
    errored_later = sample(med, "train:no_label", 2, "medium", texts["no_label"], answer="12",
                           error="timeout", created=20)
    write_generations([fixed, repeat, errored_later], shard=1)
    return Scenario(problems=problems, aime=aime)


# What the marts must say about the scenario (default vars).
EXPECTED_LABELS = {
    # problem: (label, label_source, confident)
    "train:half": ("\\frac{1}{2}", "vote", True),
    "train:wrong_label": ("7", "vote", True),
    "train:no_label": ("12", "vote", True),
    "train:split": ("3", "dataset", False),
    "train:none": (None, "none", False),
    "train:eighty": ("9", "dataset", False),
    "train:copy_exact": ("204", "vote", True),
    "train:copy_ngram": ("25", "vote", True),
    "train:bad_data": ("6", "vote", True),
}
EXPECTED_REJECTS = {
    # (problem, sample) of the medium run -> reject_reason
    ("train:bad_data", 0): None,  # the rerun filled it
    ("train:bad_data", 1): "null_completion",
    ("train:bad_data", 2): "no_boxed",
    ("train:bad_data", 3): "no_reasoning",
    ("train:bad_data", 4): "truncated",
    ("train:bad_data", 5): "no_answer",
    ("train:bad_data", 6): None,
    ("train:ghost", 0): "unknown_problem",
    ("train:none", 0): "no_label",
    ("train:split", 0): None,
    ("train:split", 5): "inconsistent",
    ("train:eighty", 0): "inconsistent",
    ("train:eighty", 8): None,
    ("train:no_label", 2): None,
}


# ------------------------------------------------------------------------------ synthetic (timing)


def synthetic_lake(n_problems: int, samples_per_problem: int, runs: tuple[str, ...] = ("medium", "high"),
                   seed: int = 0, rows_per_part: int = 50_000, text_chars: int = 400) -> int:
    """A big regular lake: per problem a gold integer; samples answer it in a few surface forms or
    a wrong number; some errors, truncations and duplicates. Returns the number of rows written."""
    rng = random.Random(seed)
    problems = [
        {"problem_id": f"synth:{i}", "source": "synth", "prompt": f"Synthetic problem {i}: compute f({i}).",
         "expected_answer": str(i % 997) if i % 10 else None}
        for i in range(n_problems)
    ]
    for start in range(0, n_problems, rows_per_part):
        write_problems(problems[start:start + rows_per_part])
    filler = ("Let us reason step by step about the quantity and check each case. " * 50)[:text_chars]
    written = 0
    for level in runs:
        run_id = f"synth-{level}"
        write_run(run_id, level)
        buffer: list[dict] = []
        for i in range(n_problems):
            gold = i % 997
            for k in range(samples_per_problem):
                r = rng.random()
                if r < 0.70:
                    answer = rng.choice([str(gold), f"{gold}.0", f"\\frac{{{2 * gold}}}{{2}}", f"{gold}"])
                elif r < 0.90:
                    answer = str(gold + rng.randint(1, 5))
                else:
                    answer = None
                row = {
                    "run_id": run_id, "problem_id": f"synth:{i}", "sample_idx": k, "model": "teacher",
                    "backend": "vllm", "reasoning_level": level, "prompt": f"<|start|>user<|message|>Synthetic problem {i}<|end|>",
                    "reasoning": f"{filler} ({i}, {k})",
                    "final": (f"Therefore the answer is $\\boxed{{{answer}}}$." if answer is not None else "No idea."),
                    "finish_reason": "stop", "prompt_tokens": 50, "completion_tokens": rng.randint(100, 20000),
                    "created_at": T0,
                }
                if r > 0.97:
                    row["finish_reason"], row["final"] = "length", None
                if r > 0.99:
                    row["error"], row["final"], row["reasoning"] = "engine error", None, None
                row["completion"] = None if row.get("error") else harmony_completion(row["reasoning"], row["final"])
                buffer.append(row)
                if len(buffer) >= rows_per_part:
                    write_generations(buffer, shard=written // rows_per_part)
                    written += len(buffer)
                    buffer = []
        if buffer:
            write_generations(buffer, shard=written // rows_per_part + 1)
            written += len(buffer)
    return written


# ------------------------------------------------------------- model outputs with held-back gold


@dataclass
class GradedOutputs:
    jsonl: Path
    gold: dict[str, str]  # problem_id -> the true answer (held back from the lake)
    finals: dict[tuple[str, int], str]  # (problem_id, sample_idx) -> final text
    corrupted: set[str]  # problems whose dataset label in the import is wrong


def _surface_forms(gold: str) -> list[str]:
    """Ways a model writes the same answer."""
    return [gold, gold.replace("\\frac", "\\dfrac"), f" {gold} ", gold.replace(" ", "")]


def graded_outputs(benchmarks_dir: Path, out: Path, n_problems: int = 36, seed: int = 7) -> GradedOutputs:
    """Teacher outputs on real MATH-500 problems (real answers: fractions, radicals, intervals,
    tuples, expressions), as an import file for `reasonlite import-generations`.

    Per problem 10 Harmony completions: 'confident' problems have 9-10 right answers in several
    surface forms, 'split' ones 6 right and 4 wrong; a wrong answer is another problem's gold.
    Every fourth problem carries a wrong dataset label. Problems whose gold the independent grader
    (math-verify) cannot read, or whose forms it does not accept, are skipped.
    """
    from math_verify import parse, verify

    rng = random.Random(seed)
    rows = read_benchmark(benchmarks_dir, "math500")

    def equal(a: str, b: str) -> bool:
        return bool(verify(parse(f"${a}$"), parse(f"$\\boxed{{{b}}}$")))

    picked: list[tuple[str, str]] = []
    for row in rows:
        gold = row["answer"]
        if len(picked) >= n_problems:
            break
        if "\\text" in gold or not parse(f"${gold}$") or not all(equal(gold, f) for f in _surface_forms(gold)):
            continue
        picked.append((row["problem"], gold))
    golds = [g for _, g in picked]

    records, gold_by_id, finals, corrupted = [], {}, {}, set()
    for k, (problem, gold) in enumerate(picked):
        pid = f"heldout:{k}"
        gold_by_id[pid] = gold
        wrongs = [g for g in golds if not equal(gold, g)]
        label = gold
        if k % 4 == 3:
            label = rng.choice(wrongs)
            corrupted.add(pid)
        n_right = rng.choice([9, 10]) if k % 3 else 6
        answers = [rng.choice(_surface_forms(gold)) for _ in range(n_right)]
        answers += [rng.choice(wrongs) for _ in range(10 - n_right)]
        rng.shuffle(answers)
        for i, answer in enumerate(answers):
            final = rng.choice([
                f"Therefore, the final answer is $\\boxed{{{answer}}}$.",
                f"**Answer:** $\\boxed{{{answer}}}$",
                f"Putting it together we get\n\n\\[\n\\boxed{{{answer}}}\n\\]",
            ])
            reasoning = f"We need to solve: {problem[:80]} ... Let me work through it carefully (attempt {i})."
            finals[(pid, i)] = final
            records.append({
                "problem_id": pid, "sample_idx": i, "problem": problem, "expected_answer": label,
                "completion": harmony_completion(reasoning, final), "finish_reason": "stop",
                "reasoning_level": "medium", "prompt_tokens": 100, "completion_tokens": 800,
            })
    with open(out, "w") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")
    return GradedOutputs(jsonl=out, gold=gold_by_id, finals=finals, corrupted=corrupted)
