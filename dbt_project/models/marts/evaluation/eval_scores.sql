-- Scores per evaluation run x benchmark x scoring, as the paper reports them, from eval_problem_results
-- (n, c and the majority vote per problem) and eval_samples (rates); scored samples only: no engine
-- error, gold answer known.
--   scoring     'upstream' (the paper's protocol: the last \boxed anywhere in the response, then
--               "The answer is:", then math-verify over the whole response) or 'strict' (this
--               grader's answer after the reasoning; a sample still inside <think> has none). Both
--               rows of a run share the sample counts and rates below, which do not depend on it.
--   avg_at_n    mean over problems of c/n (n samples of a problem, c of them correct)
--   pass_at_k   mean over problems of the unbiased estimator 1 - C(n-c, k) / C(n, k)
--               (Chen et al. 2021), computed as 1 - prod_{i<k} (n-c-i)/(n-i); NULL when n < k
--               for some problem of the run (the estimate would be undefined)
--   maj_at_n    majority vote by canonical answer key per problem (ties: the key seen first,
--               lowest sample_idx); a problem with no answered sample counts as wrong
--   std_err     standard error across problems of the per-problem accuracy c/n
--   rates       no-answer and truncation rates over scored samples; mean completion tokens
{%- set ks = checked_var('eval_pass_ks', 'counts') %}
with per_problem as (
    -- n, c and the majority vote per problem: one definition, shared with `reasonlite compare`.
    select run_id, benchmark, problem_id, scoring, n, c, maj_correct from {{ ref('eval_problem_results') }}
),

scorings as (
    select unnest(['upstream', 'strict']) as scoring
),

problem_scores as (
    select
        p.run_id,
        p.benchmark,
        p.problem_id,
        p.scoring,
        p.n,
        p.c,
        p.c::double / p.n as accuracy,
        p.maj_correct,
        {%- for k in ks %}
        case
            when p.n >= {{ k }}
                then 1.0 - list_product(list_transform(range({{ k }}), lambda i: (p.n - p.c - i)::double / (p.n - i)))
        end as pass_at_{{ k }}{{ "," if not loop.last }}
        {%- endfor %}
    from per_problem as p
),

sample_stats as (
    select
        run_id,
        benchmark,
        any_value(model) as model,
        any_value(model_name) as model_name,
        any_value(temperature) as temperature,
        any_value(top_p) as top_p,
        any_value(max_tokens) as max_tokens,
        any_value(n_requested) as n_requested,
        any_value(run_status) as run_status,
        any_value(run_created_at) as run_created_at,
        any_value(finished_at) as finished_at,
        count(*) filter (where is_scored) as n_samples,
        count(*) filter (where has_error) as n_errors,
        count(*) filter (where not has_error and expected_answer is null) as n_without_gold,
        avg(case when is_scored then (not has_answer)::int end) as no_answer_rate,
        avg(case when is_scored then is_truncated::int end) as truncation_rate,
        avg(case when is_scored then completion_tokens end) as mean_completion_tokens
    from {{ ref('eval_samples') }}
    group by run_id, benchmark
)

select
    st.run_id,
    st.benchmark,
    sc.scoring,
    st.model,
    st.model_name,
    st.temperature,
    st.top_p,
    st.max_tokens,
    st.n_requested,
    count(ps.problem_id) as n_problems,
    st.n_samples,
    min(ps.n) as n,
    max(ps.n) as n_max,
    avg(ps.accuracy) as avg_at_n,
    stddev_samp(ps.accuracy) / sqrt(count(ps.problem_id)) as std_err,
    {%- for k in ks %}
    case when min(ps.n) >= {{ k }} then avg(ps.pass_at_{{ k }}) end as pass_at_{{ k }},
    {%- endfor %}
    avg(ps.maj_correct::int) as maj_at_n,
    st.no_answer_rate,
    st.truncation_rate,
    st.mean_completion_tokens,
    st.n_errors,
    st.n_without_gold,
    st.run_status,
    st.run_created_at,
    st.finished_at
from sample_stats as st
cross join scorings as sc
left join problem_scores as ps
    on ps.run_id = st.run_id and ps.benchmark = st.benchmark and ps.scoring = sc.scoring
group by all
