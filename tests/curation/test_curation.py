"""Curation end to end: a real lake, a real `reasonlite curate` (dbt build on DuckDB with the grader
plugin), and checks on the marts, the exports, incremental runs and vars."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from tests.curation import lakes
from warehouse import cli, db, lake, snapshots

pytestmark = pytest.mark.slow

MARTS = {
    # mart -> ORDER BY that makes its rows comparable
    "pseudo_labels": "problem_id",
    "judged_generations": "run_id, problem_id, sample_idx",
    "sft_examples": "run_id, problem_id, sample_idx",
    "curation_funnel": "run_id, stratum, stage_order",
    "threshold_sweep": "vote_ratio, min_votes",
    "contamination": "problem_id, benchmark_problem_id",
}


def _isolated_env(root: Path) -> dict[str, str]:
    # dbt's own files per test run too, so concurrent users of dbt_project/ never collide.
    return {**lake.env_for_root(root), "HF_DATASETS_CACHE": str(root / "hf_cache")}


def curate_cli(*args: str) -> tuple[int, str, str]:
    """`reasonlite curate ...` in-process; returns (exit code, stdout, stderr)."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["curate", "--quiet", *args])
    return code, out.getvalue(), err.getvalue()


def query(sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(lake.database_path()), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def snapshot() -> dict[str, list[tuple]]:
    return {name: query(f"SELECT * FROM {name} ORDER BY {order}") for name, order in MARTS.items()}


@pytest.fixture(scope="module")
def scenario(tmp_path_factory, benchmarks_dir):
    root = tmp_path_factory.mktemp("curation") / "warehouse"
    with pytest.MonkeyPatch.context() as mp:
        for key, value in _isolated_env(root).items():
            mp.setenv(key, value)
        built = lakes.scenario_lake(benchmarks_dir)
        code, out, err = curate_cli()
        assert code == 0, out + err
        built.first_summary = out
        yield built


# ------------------------------------------------------------------------------------ the marts


def test_summary_reports_funnel_and_grader_calls(scenario):
    out = scenario.first_summary
    assert "curation funnel" in out and "sft_examples" in out
    assert "grader calls on new strings:" in out and "extract_answer" in out
    assert "dbt build:" in out and "ok" in out


def test_pseudo_labels_follow_the_vote_rule(scenario):
    rows = {r[0]: r[1:] for r in query(
        "SELECT problem_id, label, label_source, confident FROM pseudo_labels WHERE source = 'train'")}
    assert rows == {pid: expected for pid, expected in lakes.EXPECTED_LABELS.items()}
    # 1/2 written five ways is one answer; its display form is the most frequent surface form.
    half = query("SELECT n_samples, n_answered, top_votes, top_share, top_key FROM pseudo_labels "
                 "WHERE problem_id = 'train:half'")[0]
    assert half[:4] == (13, 12, 12, 1.0)  # 13 samples, 1 truncated, all 12 answers agree
    agree = dict(query("SELECT problem_id, dataset_agrees FROM pseudo_labels WHERE source = 'train'"))
    assert agree["train:wrong_label"] is False and agree["train:half"] is True
    assert agree["train:no_label"] is None  # no dataset label to agree with
    split = query("SELECT top_share, runner_up_share FROM pseudo_labels WHERE problem_id = 'train:split'")[0]
    assert split == (5 / 8, 3 / 8)


def test_judged_generations_reject_reasons(scenario):
    judged = {(r[0], r[1]): r[2:] for r in query(
        "SELECT problem_id, sample_idx, reject_reason, keep, is_consistent FROM judged_generations "
        "WHERE run_id = 'teacher-medium'")}
    for key, reason in lakes.EXPECTED_REJECTS.items():
        assert judged[key][0] == reason, key
        assert judged[key][1] == (reason is None), key
    # one row per sample: the three repeated lake rows collapsed
    assert query("SELECT count(*), count(DISTINCT (run_id, problem_id, sample_idx)) FROM judged_generations")[0] \
        == (71, 71)
    # the truncated high-mode sample
    assert query("SELECT reject_reason, is_truncated FROM judged_generations "
                 "WHERE run_id = 'teacher-high' AND problem_id = 'train:half' AND sample_idx = 3") \
        == [("truncated", True)]
    # the error row was replaced by its rerun: the sample holds the rerun's answer
    assert query("SELECT has_error, answer FROM judged_generations WHERE run_id = 'teacher-medium' "
                 "AND problem_id = 'train:bad_data' AND sample_idx = 0") == [(False, "6")]


def test_strata_follow_reasoning_level(scenario):
    strata = dict(query("SELECT run_id, list(DISTINCT stratum) FROM judged_generations GROUP BY run_id"))
    assert strata == {"teacher-medium": ["short"], "teacher-high": ["long"]}


def test_contamination_and_sft_examples(scenario):
    matches = query("SELECT problem_id, benchmark_problem_id, match_type FROM contamination ORDER BY 1")
    assert matches == [("train:copy_exact", "aime24:0", "exact"), ("train:copy_ngram", "aime24:1", "ngram")]
    sft_problems = {r[0] for r in query("SELECT DISTINCT problem_id FROM sft_examples")}
    assert not sft_problems & {"train:copy_exact", "train:copy_ngram", "train:ghost", "train:none"}
    reasons = dict(query("SELECT sft_drop_reason, count(*) FROM int_sft_selection GROUP BY ALL"))
    assert reasons == {None: 39, "contaminated": 8, "duplicate_text": 1}
    # kept - dropped; every example has a label and a known source
    assert query("SELECT count(*) FROM sft_examples")[0][0] == 39
    assert query("SELECT count(*) FROM sft_examples WHERE label IS NULL OR label_source NOT IN ('vote', 'dataset')") \
        == [(0,)]


def test_sft_messages(scenario):
    (messages, problem_id), = query(
        "SELECT messages, problem_id FROM sft_examples WHERE run_id = 'teacher-medium' "
        "AND problem_id = 'train:wrong_label' AND sample_idx = 0")
    user, assistant = messages
    assert user == {"role": "user", "content": "What is three plus four?" + lakes.INSTRUCTION}  # no system wrapper
    assert assistant["role"] == "assistant"
    assert assistant["content"] == (
        "<think>\nWorking on train:wrong_label (sample 0, medium). Let me compute carefully.\n</think>\n\n"
        "The answer is $\\boxed{7}$."
    )


def test_funnel_counts(scenario):
    funnel = {(r[0], r[1], r[2]): r[3] for r in query(
        "SELECT run_id, stratum, stage, n_rows FROM curation_funnel")}
    med = {stage: n for (run, _, stage), n in funnel.items() if run == "teacher-medium"}
    assert med["lake_rows"] == 65 and med["duplicate_rows"] == 3 and med["samples"] == 62
    assert med["unknown_problem"] == 1 and med["null_completion"] == 1 and med["no_boxed"] == 1
    assert med["no_reasoning"] == 1 and med["truncated"] == 1 and med["no_answer"] == 1
    assert med["no_label"] == 5 and med["inconsistent"] == 11 and med["error"] == 0
    assert med["kept"] == 40 and med["contaminated"] == 8 and med["duplicate_text"] == 1
    assert med["sft_examples"] == 31
    high = {stage: n for (run, stratum, stage), n in funnel.items() if run == "teacher-high"}
    assert high["samples"] == 9 and high["truncated"] == 1 and high["kept"] == 8
    assert {s for (_, s, _) in funnel} == {"short", "long"}


def test_exports_load_with_datasets(scenario):
    import datasets

    # Segment columns: messages first, then the rest of the contract (hub._output_schema's order).
    contract = ["messages", "problem_id", "source", "run_id", "sample_idx", "teacher_model", "reasoning_level",
                "stratum", "label", "label_source", "prompt_tokens", "completion_tokens"]
    sizes = {}
    for stratum in ("short", "long"):
        folder = lake.exports_dir() / f"sft_{stratum}_cot"
        ds = datasets.load_dataset("parquet", data_files=str(folder / "part-*.parquet"), split="train")
        assert ds.column_names == [*contract, "answer", "answer_key"]
        assert set(ds["stratum"]) == {stratum}
        schema = ds.data.schema
        assert schema.field("messages").type == pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
        assert schema.field("sample_idx").type == pa.int32()
        assert [m["role"] for m in ds[0]["messages"]] == ["user", "assistant"]
        sizes[stratum] = len(ds)
    assert sizes == {"short": 31, "long": 8}
    recorded = json.loads((lake.exports_dir() / "curation_vars.json").read_text())
    assert recorded["vote_ratio"] == 0.9 and recorded["min_votes"] == 4


def test_reasonlite_sql_sees_lake_and_marts(scenario):
    result = db.run_readonly_sql(
        "SELECT (SELECT count(*) FROM generations), (SELECT count(*) FROM pseudo_labels WHERE label_source = 'vote'), "
        "(SELECT count(*) FROM sft_examples), (SELECT rows FROM sft_exports WHERE stratum = 'long')"
    ).fetchall()
    assert result == [(74, 6, 39, 8)]


def test_bad_vars_are_one_line_errors(scenario, capsys):
    assert cli.main(["curate", "--vars", "[1, 2]"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("reasonlite curate: error: --vars: expected a mapping") and "\n" not in err
    assert cli.main(["curate", "--vars", "{vote_ratio: 2}"]) == 2
    assert "vote_ratio must be a number in (0, 1], got 2" in capsys.readouterr().err


def test_docs_generate(scenario):
    import os

    code, out, err = curate_cli("--docs", "--select", "stg_lake__runs")
    assert code == 0, out + err
    target = Path(os.environ["DBT_TARGET_PATH"])
    catalog = json.loads((target / "catalog.json").read_text())
    assert "model.reasonlite.pseudo_labels" in catalog["nodes"]
    assert "label_source" in catalog["nodes"]["model.reasonlite.pseudo_labels"]["columns"]
    assert (target / "index.html").exists()


# ------------------------------------------------------------------- incremental runs and vars


def test_new_run_grades_only_new_strings_and_equals_full_refresh(scenario):
    before = {t: query(f"SELECT count(*) FROM {t}")[0][0]
              for t in ("int_answer_extractions", "int_answer_dictionary")}
    # Fallback keys (unparseable, or a parse that timed out) are graded again on every build.
    fallbacks = query("SELECT count(*) FROM int_answer_dictionary WHERE key_is_fallback")[0][0]
    assert fallbacks == 1  # "a @ b"
    # A third teacher run: mostly answers seen before, plus exactly two new answer strings
    # ("2/4" and "13"), each in one new span.
    run = "teacher-medium-2"
    lakes.write_run(run, "medium")
    rows = [lakes.sample(run, "train:half", i, "medium", "What is one divided by two?", answer="\\frac{1}{2}")
            for i in range(3)]
    rows.append(lakes.sample(run, "train:half", 3, "medium", "What is one divided by two?", answer="2/4"))
    rows += [lakes.sample(run, "train:no_label", i, "medium", "What is three times four?", answer="12")
             for i in range(2)]
    rows.append(lakes.sample(run, "train:no_label", 2, "medium", "What is three times four?", answer="13"))
    lakes.write_generations(rows)

    code, out, err = curate_cli()
    assert code == 0, out + err
    assert f"grader calls on new strings: answers_equal 1, canonical_key {2 + fallbacks}, extract_answer 2" in out
    assert f"new dictionary rows: extractions 2, dictionary {2 + fallbacks}, equivalence 1" in out
    after = {t: query(f"SELECT count(*) FROM {t}")[0][0] for t in before}
    assert after == {t: n + 2 for t, n in before.items()}
    # 2/4 is one more vote for 1/2; 13 is a dissenting vote (6 of 7 = 0.857 < 0.9 -> the vote fails)
    assert query("SELECT top_votes, label_source FROM pseudo_labels WHERE problem_id = 'train:half'") \
        == [(16, "vote")]
    assert query("SELECT label_source FROM pseudo_labels WHERE problem_id = 'train:no_label'") == [("none",)]

    incremental = snapshot()
    code, out, err = curate_cli("--full-refresh")
    assert code == 0, out + err
    assert "extract_answer" in out  # a full refresh grades everything again
    assert snapshot() == incremental


def test_vars_change_labels_as_threshold_sweep_predicted(scenario):
    (predicted_votes, predicted_kept, predicted_changed), = query(
        "SELECT problems_labeled_by_vote, solutions_kept, labels_changed_from_dataset FROM threshold_sweep "
        "WHERE vote_ratio = 0.8 AND min_votes = 4")
    current = query("SELECT problems_labeled_by_vote, solutions_kept FROM threshold_sweep WHERE is_current")[0]
    assert (predicted_votes, predicted_kept) != current  # the sweep says 0.8 changes something
    assert query("SELECT label FROM pseudo_labels WHERE problem_id = 'train:eighty'") == [("9",)]

    code, out, err = curate_cli("--vars", "{vote_ratio: 0.8}")
    assert code == 0, out + err
    assert query("SELECT count(*) FROM pseudo_labels WHERE label_source = 'vote'")[0][0] == predicted_votes
    assert query("SELECT count(*) FROM judged_generations WHERE keep")[0][0] == predicted_kept
    assert query("SELECT count(*) FROM pseudo_labels WHERE label_source = 'vote' AND dataset_agrees = false"
                 )[0][0] == predicted_changed
    # 8 of 10 now suffice: the teacher's 10 replaces the dataset's 9
    assert query("SELECT label, label_source FROM pseudo_labels WHERE problem_id = 'train:eighty'") \
        == [("10", "vote")]
    assert query("SELECT vote_ratio, min_votes FROM threshold_sweep WHERE is_current") == [(0.8, 4)]


def test_vote_runs_cap_and_token_strata_vars(scenario):
    code, out, err = curate_cli(
        "--vars", "{vote_runs: [teacher-high], max_per_problem: 2, stratify_by: tokens, long_cot_min_tokens: 1000}")
    assert code == 0, out + err
    # Only the high run votes: "half" has 4 high samples (3 answered), "split" none at all.
    assert query("SELECT n_samples, n_answered, top_votes, label_source FROM pseudo_labels "
                 "WHERE problem_id = 'train:half'") == [(4, 3, 3, "dataset")]  # 3 votes < min_votes 4
    assert query("SELECT n_samples, label_source FROM pseudo_labels WHERE problem_id = 'train:split'") \
        == [(0, "dataset")]
    # Strata by completion tokens (medium samples have 400, high ones 1500).
    assert dict(query("SELECT run_id, list(DISTINCT stratum) FROM judged_generations "
                      "WHERE run_id LIKE 'teacher-%' GROUP BY run_id")) \
        == {"teacher-medium": ["short"], "teacher-medium-2": ["short"], "teacher-high": ["long"]}
    # At most two examples per problem and stratum; the rest are counted as capped.
    assert query("SELECT max(n) FROM (SELECT count(*) AS n FROM sft_examples GROUP BY problem_id, stratum)") \
        == [(2,)]
    capped = query("SELECT sum(n_rows) FROM curation_funnel WHERE stage = 'capped'")[0][0]
    assert capped > 0
    assert query("SELECT count(*) FROM int_sft_selection WHERE sft_drop_reason = 'capped'") == [(capped,)]


def test_plain_teacher_vars_relax_format_rules(scenario):
    """A teacher with no reasoning channel and no boxes (the CPU demo's) is judged on its answer."""
    code, out, err = curate_cli("--vars", "{require_reasoning: false, require_boxed: false}")
    assert code == 0, out + err  # the singular test `keep => well-formed` holds under these vars too
    reasons = dict(query("SELECT sample_idx, reject_reason FROM judged_generations "
                         "WHERE run_id = 'teacher-medium' AND problem_id = 'train:bad_data'"))
    assert reasons[2] != "no_boxed" and reasons[3] != "no_reasoning"
    assert reasons[1] == "null_completion" and reasons[4] == "truncated"  # the other rules still apply
    assert query("SELECT count(*) FROM judged_generations WHERE reject_reason IN ('no_boxed', 'no_reasoning')") \
        == [(0,)]
    code, out, err = curate_cli()  # back to the defaults for any later test
    assert code == 0, out + err


def test_empty_lake_builds(tmp_path, monkeypatch):
    """No problems, no runs, no generations yet: every model builds, every test passes, the
    strata are one empty segment each, with the full schema."""
    import pyarrow.parquet as pq

    for key, value in _isolated_env(tmp_path / "warehouse").items():
        monkeypatch.setenv(key, value)
    code, out, err = curate_cli()
    assert code == 0, out + err
    assert query("SELECT count(*) FROM pseudo_labels") == [(0,)]
    assert query("SELECT count(*) FROM threshold_sweep WHERE is_current") == [(1,)]
    for name in snapshots.STRATA_DIRS:
        segment, = snapshots.stratum_segments(lake.exports_dir() / name)
        assert pq.read_schema(segment).names[:12] == ["messages", "problem_id", "source", "run_id", "sample_idx",
                                                      "teacher_model", "reasoning_level", "stratum", "label",
                                                      "label_source", "prompt_tokens", "completion_tokens"]
        assert pq.read_metadata(segment).num_rows == 0
