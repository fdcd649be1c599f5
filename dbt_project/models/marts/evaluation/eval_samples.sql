-- One row per sample of every evaluation run (runs.purpose = 'eval'): the benchmark it belongs to
-- (problems.source), the answer the grader extracted, its canonical key, and whether it is correct
-- against the benchmark's gold answer (problems.expected_answer). Correctness is the curation
-- grader's `matches_expected` from int_sample_grades: one grader, one definition of "equal".
--   is_scored  = no engine error and the problem has a gold answer; only these are scored.
--   is_correct = the extracted answer equals the gold answer (no answer = wrong); NULL if unscored.
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
        s.has_error
    from {{ ref('int_sample_grades') }} as s
    left join runs as r on r.run_id = s.run_id
    where s.purpose = 'eval'
)

select
    * exclude (matches_expected),
    case when is_scored then coalesce(matches_expected, false) end as is_correct
from samples
