-- Accuracy had generation stopped at each token budget (the blog's accuracy-vs-compute figure).
-- A sample counts as correct at budget B only if it is correct and used <= B completion tokens:
-- cut at B, a longer sample has not written its answer yet. Per run x benchmark x budget, the
-- mean over problems of the per-problem share, like avg_at_n; at the run's own max_tokens it
-- equals eval_scores.avg_at_n. Budgets: var eval_token_budgets below the run's max_tokens, plus
-- max_tokens itself (beyond it the run says nothing). One curve per scoring ('upstream', 'strict'),
-- as in eval_scores.
with samples as (
    select * exclude (is_correct, is_correct_upstream), 'upstream' as scoring, is_correct_upstream as is_correct
    from {{ ref('eval_samples') }} where is_scored
    union all by name
    select * exclude (is_correct, is_correct_upstream), 'strict' as scoring, is_correct
    from {{ ref('eval_samples') }} where is_scored
),

ladder as (
    select unnest([{{ checked_var('eval_token_budgets', 'counts') | join(', ') }}])::bigint as budget
),

run_budgets as (
    select distinct s.run_id, s.benchmark, l.budget
    from samples as s
    inner join ladder as l on s.max_tokens is null or l.budget < s.max_tokens
    union
    select distinct run_id, benchmark, max_tokens::bigint
    from samples
    where max_tokens is not null
),

per_problem as (
    select
        s.run_id,
        s.benchmark,
        s.problem_id,
        s.scoring,
        b.budget,
        avg(coalesce(s.is_correct and coalesce(s.completion_tokens, s.max_tokens) <= b.budget, false)::int) as accuracy,
        avg(coalesce(coalesce(s.completion_tokens, s.max_tokens) <= b.budget, false)::int) as finished_share
    from samples as s
    inner join run_budgets as b using (run_id, benchmark)
    group by s.run_id, s.benchmark, s.problem_id, s.scoring, b.budget
),

runs as (
    select run_id, benchmark, any_value(model) as model, any_value(model_name) as model_name,
           any_value(max_tokens) as max_tokens
    from samples
    group by run_id, benchmark
)

select
    p.run_id,
    p.benchmark,
    p.scoring,
    r.model,
    r.model_name,
    p.budget,
    p.budget = r.max_tokens as is_max_tokens,
    count(*) as n_problems,
    avg(p.accuracy) as accuracy,
    stddev_samp(p.accuracy) / sqrt(count(*)) as std_err,
    avg(p.finished_share) as within_budget_rate
from per_problem as p
inner join runs as r using (run_id, benchmark)
group by all
order by p.run_id, p.benchmark, p.scoring, p.budget
