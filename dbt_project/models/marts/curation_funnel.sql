-- How samples flow through curation, per curated run and stratum: the lake rows, the duplicate
-- rows resolved by staging, each rule that rejects samples (in order; a sample counts under the
-- first rule it fails), the kept samples, the SFT drops, and the final SFT examples.
-- `share` is n_rows / samples (upstream printed format-mismatch / wrong / correct ratios).
{%- set steps = [('lake_rows', 'count'), ('duplicate_rows', 'dropped'), ('samples', 'count')] %}
{%- for r in reject_reasons() %}{% do steps.append((r, 'rejected')) %}{% endfor %}
{%- do steps.append(('kept', 'count')) %}
{%- for r in sft_drop_reasons() %}{% do steps.append((r, 'sft_dropped')) %}{% endfor %}
{%- do steps.append(('sft_examples', 'count')) %}
{#- Outside the flow (kind 'llm'): samples whose label check the grader could not decide (a time-out,
    a refused or an unreadable side: int_sample_grades.*_undecided; listed by pair in
    grader_undecided_pairs), LLM judge cost: samples whose label check the grader abstained on,
    and those an LLM verdict decided; llm_* columns on the llm_needed row. -#}
{%- do steps.append(('grader_undecided', 'llm')) %}
{%- do steps.append(('llm_needed', 'llm')) %}
{%- do steps.append(('llm_judged', 'llm')) %}
with judged as (
    select j.run_id, j.purpose, j.stratum, j.n_copies, j.reject_reason, s.sft_drop_reason, j.keep,
           j.grader_abstained, j.judge_source, j.judge_unit_id,
           j.is_well_formed and case j.label_source when 'vote' then g.top_undecided
               when 'dataset' then g.expected_undecided end is not null as grader_undecided
    from {{ ref('judged_generations') }} as j
    left join {{ ref('int_sft_selection') }} as s using (run_id, problem_id, sample_idx)
    left join {{ ref('int_sample_grades') }} as g using (run_id, problem_id, sample_idx)
),

counts as (
    select
        run_id,
        any_value(purpose) as purpose,
        stratum,
        sum(n_copies) as lake_rows,
        sum(n_copies - 1) as duplicate_rows,
        count(*) as samples,
        {%- for r in reject_reasons() %}
        count(*) filter (where reject_reason = '{{ r }}') as "{{ r }}",
        {%- endfor %}
        count(*) filter (where keep) as kept,
        {%- for r in sft_drop_reasons() %}
        count(*) filter (where keep and sft_drop_reason = '{{ r }}') as "{{ r }}",
        {%- endfor %}
        count(*) filter (where keep and sft_drop_reason is null) as sft_examples,
        count(*) filter (where grader_undecided) as grader_undecided,
        count(*) filter (where grader_abstained) as llm_needed,
        count(*) filter (where judge_source = 'llm') as llm_judged
    from judged
    group by run_id, stratum
),

-- Token cost of the LLM judge for the distinct pairs the abstained samples needed (all judgments
-- of a pair, unparseable ones included; a pair shared by several runs/strata counts in each).
llm_cost as (
    select
        u.run_id,
        u.stratum,
        count(*) as llm_pairs,
        count(v.unit_id) as llm_pairs_judged,
        coalesce(sum(v.prompt_tokens), 0)::bigint as llm_prompt_tokens,
        coalesce(sum(v.completion_tokens), 0)::bigint as llm_completion_tokens
    from (select distinct run_id, stratum, judge_unit_id from judged where grader_abstained) as u
    left join {{ ref('int_llm_verdicts') }} as v on v.unit_id = u.judge_unit_id
    group by u.run_id, u.stratum
),

steps as (
    select * from (values
        {%- for step, kind in steps %}
        ({{ loop.index }}, '{{ step }}', '{{ kind }}'){{ "," if not loop.last }}
        {%- endfor %}
    ) as t(step_order, step, kind)
),

long as (
    unpivot counts on {% for step, kind in steps %}"{{ step }}"{{ ", " if not loop.last }}{% endfor %}
    into name step value n_rows
)

-- Column order: stage name and count first (what a generic bar chart reads), then the keys.
select
    long.step as stage,
    long.n_rows::bigint as n_rows,
    steps.step_order as stage_order,
    steps.kind as stage_kind,
    long.n_rows::double / nullif(counts.samples, 0) as share,
    long.run_id,
    long.purpose,
    long.stratum,
    case when long.step = 'llm_needed' then coalesce(c.llm_pairs, 0) end as llm_pairs,
    case when long.step = 'llm_needed' then coalesce(c.llm_pairs_judged, 0) end as llm_pairs_judged,
    case when long.step = 'llm_needed' then coalesce(c.llm_prompt_tokens, 0) end as llm_prompt_tokens,
    case when long.step = 'llm_needed' then coalesce(c.llm_completion_tokens, 0) end as llm_completion_tokens
from long
inner join steps using (step)
inner join counts using (run_id, stratum)
left join llm_cost as c using (run_id, stratum)
order by long.run_id, long.stratum, steps.step_order
