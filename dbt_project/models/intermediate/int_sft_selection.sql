-- The kept samples on their way to sft_examples, each with the first SFT rule that drops it:
-- benchmark_problem (the problem is a benchmark), contaminated (see contamination),
-- near_duplicate (with var drop_near_duplicates: the problem duplicates a kept one, see
-- problem_duplicates), duplicate_text (same problem, same reasoning+final as an earlier sample), capped (over
-- var max_per_problem per problem and stratum; a deterministic pseudo-random pick).
-- With var vote_scope per_run each run's samples were judged against that run's own label
-- (judged_generations), as upstream judged each run's samples against its own vote; selection
-- then treats the runs' kept samples alike (one copy of a text per problem, the cap per problem
-- and stratum), so a problem may bring examples of two labels, one per run.
{%- set cap = checked_var('max_per_problem', 'count_or_null') %}
with kept as (
    select
        j.run_id, j.problem_id, j.sample_idx, j.stratum, j.content_hash, j.is_benchmark_problem,
        c.problem_id is not null as is_contaminated,
        d.problem_id is not null and {{ var_sql('drop_near_duplicates', 'boolean') }} as is_near_duplicate
    from {{ ref('judged_generations') }} as j
    left join (select distinct problem_id from {{ ref('contamination') }}) as c
        on c.problem_id = j.problem_id
    left join {{ ref('problem_duplicates') }} as d on d.problem_id = j.problem_id
    where j.keep
),

deduped as (
    select
        *,
        row_number() over (
            partition by problem_id, content_hash order by run_id, sample_idx
        ) as text_copy
    from kept
    where not is_benchmark_problem and not is_contaminated and not is_near_duplicate
),

capped as (
    select
        *,
        row_number() over (
            partition by problem_id, stratum order by md5(run_id || ':' || sample_idx), run_id, sample_idx
        ) as pick
    from deduped
    where text_copy = 1
)

select
    k.run_id,
    k.problem_id,
    k.sample_idx,
    k.stratum,
    case
        when k.is_benchmark_problem then 'benchmark_problem'
        when k.is_contaminated then 'contaminated'
        when k.is_near_duplicate then 'near_duplicate'
        when d.text_copy > 1 then 'duplicate_text'
        {% if cap is not none %}
        when c.pick > {{ var_sql('max_per_problem', 'count_or_null') }} then 'capped'
        {% endif %}
    end as sft_drop_reason
from kept as k
left join deduped as d using (run_id, problem_id, sample_idx)
left join capped as c using (run_id, problem_id, sample_idx)
