-- One row per sample of every evaluation run (runs.purpose = 'eval'): the benchmark it belongs to
-- (problems.source), the answer the grader extracted, its canonical key, and whether it is correct
-- against the benchmark's gold answer (problems.expected_answer). Correctness is the curation
-- grader's `matches_expected` from int_sample_grades: one grader, one definition of "equal".
--   is_scored  = no engine error and the problem has a gold answer; only these are scored.
--   is_correct = the extracted answer equals the gold answer (no answer = wrong); NULL if unscored.
--                This is the strict scoring: reasoning is ignored, a sample still inside <think> has
--                no answer.
--   is_correct_upstream = upstream's scoring (eval_upstream_verdicts: the last \boxed anywhere,
--                "The answer is:", math-verify over the whole response); NULL if unscored. An
--                undecided verdict counts as wrong in both.
with runs as (
    select run_id, temperature, top_p, max_tokens, n_samples, status, created_at, finished_at
    from {{ ref('stg_lake__runs') }}
),

samples as (
    select
        s.run_id,
        s.problem_source as benchmark,
        s.problem_id,
        s.sample_idx,
        s.model,
        -- A readable model name: the folder name, with its parent for trainer checkpoints.
        case
            when regexp_matches(rtrim(s.model, '/'), '(^|/)checkpoint-[0-9]+$')
                then regexp_extract(rtrim(s.model, '/'), '([^/]+/checkpoint-[0-9]+)$', 1)
            else regexp_extract(rtrim(s.model, '/'), '([^/]+)$', 1)
        end as model_name,
        r.temperature,
        r.top_p,
        r.max_tokens,
        r.n_samples as n_requested,
        r.status as run_status,
        r.created_at as run_created_at,
        r.finished_at,
        s.answer,
        s.answer_key,
        s.expected_answer,
        s.answer is not null as has_answer,
        not s.has_error and s.expected_answer is not null as is_scored,
        s.matches_expected,
        s.finish_reason,
        s.is_truncated,
        s.completion_tokens,
        s.prompt_tokens,
        s.has_error,
        u.is_equal as upstream_equal
    from {{ ref('int_sample_grades') }} as s
    left join runs as r on r.run_id = s.run_id
    left join {{ ref('eval_upstream_verdicts') }} as u
        on u._source_file = s._source_file and u._source_row = s._source_row and u.gold_hash = s.expected_answer_hash
    where s.purpose = 'eval'
)

select
    * exclude (matches_expected, upstream_equal),
    case when is_scored then coalesce(matches_expected, false) end as is_correct,
    case when is_scored then coalesce(upstream_equal, false) end as is_correct_upstream
from samples
