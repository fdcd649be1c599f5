-- One row per evaluation run x benchmark x problem x scoring: the per-problem numbers every evaluation
-- metric is a mean of, and what `reasonlite compare` resamples (scored samples only, as in eval_scores).
--   scoring               'upstream': the paper's protocol (eval_samples.is_correct_upstream: the last
--                         \boxed anywhere, "The answer is:", math-verify over the whole response);
--                         'strict': this grader's (eval_samples.is_correct: the answer after the
--                         reasoning; a sample still inside <think> has none)
--   n, c                  scored samples of the problem, and how many are correct
--   maj_correct           the most voted canonical answer key is correct (ties: the key seen first,
--                         lowest sample_idx); no answered sample = wrong
--   sample_*              per-sample correctness and answer keys in sample_idx order, so a comparison
--                         can keep the first n samples two runs share and resample them
--   eval_name             the model name `reasonlite evaluate --name` put into the run id
--                         (eval-<name>-<benchmark>-<10 hex>); NULL for run ids of another shape
with samples as (
    select * exclude (is_correct, is_correct_upstream), 'upstream' as scoring, is_correct_upstream as is_correct
    from {{ ref('eval_samples') }} where is_scored
    union all by name
    select * exclude (is_correct, is_correct_upstream), 'strict' as scoring, is_correct
    from {{ ref('eval_samples') }} where is_scored
),

key_votes as (
    select
        run_id,
        benchmark,
        problem_id,
        scoring,
        answer_key,
        count(*) as votes,
        min(sample_idx) as first_sample,
        -- Samples sharing a key agree with the gold answer alike; bool_or guards a grader that
        -- could not decide one of them.
        bool_or(is_correct) as key_correct
    from samples
    where answer_key is not null
    group by run_id, benchmark, problem_id, scoring, answer_key
),

majority as (
    select run_id, benchmark, problem_id, scoring, key_correct as maj_correct
    from key_votes
    qualify row_number() over (
        partition by run_id, benchmark, problem_id, scoring order by votes desc, first_sample
    ) = 1
),

runs as (
    select run_id, prompt_template, reasoning_level from {{ ref('stg_lake__runs') }}
),

per_problem as (
    select
        run_id,
        benchmark,
        problem_id,
        scoring,
        any_value(model) as model,
        any_value(model_name) as model_name,
        any_value(temperature) as temperature,
        any_value(top_p) as top_p,
        any_value(max_tokens) as max_tokens,
        any_value(run_created_at) as run_created_at,
        any_value(finished_at) as finished_at,
        count(*) as n,
        count(*) filter (where is_correct) as c,
        list(is_correct order by sample_idx) as sample_correct,
        list(answer_key order by sample_idx) as sample_answer_keys,
        list(sample_idx order by sample_idx) as sample_idxs
    from samples
    group by run_id, benchmark, problem_id, scoring
)

select
    p.run_id,
    p.benchmark,
    p.problem_id,
    p.scoring,
    p.model,
    p.model_name,
    case
        when starts_with(p.run_id, 'eval-')
            and regexp_matches(p.run_id, '-[0-9a-f]{10}$')
            and ends_with(left(p.run_id, length(p.run_id) - 11), '-' || p.benchmark)
            and length(p.run_id) > 17 + length(p.benchmark)
            then substr(p.run_id, 6, length(p.run_id) - 17 - length(p.benchmark))
    end as eval_name,
    p.temperature,
    p.top_p,
    p.max_tokens,
    r.prompt_template,
    r.reasoning_level,
    p.run_created_at,
    p.finished_at,
    p.n,
    p.c,
    p.c::double / p.n as accuracy,
    coalesce(m.maj_correct, false) as maj_correct,
    p.sample_correct,
    p.sample_answer_keys,
    p.sample_idxs
from per_problem as p
left join majority as m using (run_id, benchmark, problem_id, scoring)
left join runs as r using (run_id)
