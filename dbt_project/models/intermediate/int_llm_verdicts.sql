-- One row per LLM judge unit: a distinct (label, answer) pair sent by `reasonlite judge`, unit id
-- 'judge:' || md5(label || chr(31) || answer) (evaluation/judge.py computes the same in Python;
-- the marts recompute it to join a verdict back to every sample with that pair). Rows come from
-- the judge runs (runs.purpose = 'judge'; var judge_runs narrows them, [] = all). Each output is
-- parsed by the ONE verdict parser, judge_verdict(final) (evaluation/judge.py parse_verdict, a UDF
-- registered by the dbt plugin): true / false from \boxed{"match": ...}, NULL when unparseable.
-- The verdict of a unit is the majority of its parsed verdicts (NULL on a tie or when none
-- parsed); an unparseable output is counted as such, never guessed.
{%- set runs = checked_var('judge_runs', 'texts') %}
with judge_rows as (
    select
        g.problem_id as unit_id,
        g.run_id,
        g.sample_idx,
        g.error,
        g.finish_reason,
        g.final,
        g.prompt_tokens,
        g.completion_tokens,
        g.created_at
    from {{ ref('stg_lake__generations') }} as g
    inner join {{ ref('stg_lake__runs') }} as r on r.run_id = g.run_id
    where r.purpose = 'judge'
      and starts_with(g.problem_id, 'judge:')
      {%- if runs | length > 0 %}
      and list_contains({{ var_sql('judge_runs', 'texts') }}, g.run_id)
      {%- endif %}
),

-- Each distinct final text is parsed once: a judge's final channel is short and repeats a lot
-- (\boxed{"match": true}), so a build parses few strings even over millions of judgments.
final_verdicts as (
    select final, judge_verdict(final) as verdict
    from (select distinct final from judge_rows where error is null and final is not null)
),

parsed as (
    select j.*, case when j.error is null then f.verdict end as verdict
    from judge_rows as j
    left join final_verdicts as f on f.final = j.final
),

per_unit as (
    select
        unit_id,
        count(*) as n_judgments,
        count(*) filter (where verdict) as n_match,
        count(*) filter (where not verdict) as n_no_match,
        count(*) filter (where error is null and verdict is null) as n_unparseable,
        count(*) filter (where error is not null) as n_errors,
        count(*) filter (where finish_reason = 'length') as n_truncated,
        coalesce(sum(prompt_tokens), 0)::bigint as prompt_tokens,
        coalesce(sum(completion_tokens), 0)::bigint as completion_tokens,
        string_agg(distinct run_id, ',' order by run_id) as judge_run_ids,
        max(created_at) as last_judged_at
    from parsed
    group by unit_id
)

select
    unit_id,
    case
        when n_match > n_no_match then true
        when n_no_match > n_match then false
    end as llm_verdict,
    case
        when n_match > n_no_match then 'match'
        when n_no_match > n_match then 'no_match'
        when n_match > 0 then 'tie'
        when n_unparseable > 0 then 'unparseable'
        else 'error'
    end as llm_status,
    n_judgments,
    n_match,
    n_no_match,
    n_unparseable,
    n_errors,
    n_truncated,
    prompt_tokens,
    completion_tokens,
    judge_run_ids,
    last_judged_at
from per_unit
