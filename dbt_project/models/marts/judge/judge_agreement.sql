-- Symbolic grader vs LLM, wherever both have spoken. Two comparisons:
--   verdict: per distinct (label, answer) pair of the samples that reach the label check, the
--            grader's verdict vs the LLM judge's (int_llm_verdicts, `reasonlite judge`);
--   tally:   per problem, the symbolic vote's top answer vs the LLM tally's (int_llm_tallies,
--            `reasonlite vote-llm`), same top answer by canonical key or answers_equal.
-- scope: 'grader_abstained' (the grader could not decide: unparseable or free-form answers; there
-- its verdict is only its conservative fallback), 'grader_decided' (only judged with --all), 'all'.
-- Rows: row_type 'summary' -- one per comparison x scope, always present: n_llm (units with an
-- LLM output), n_compared (with a parsed LLM verdict), n_agree, n_disagree, agreement_rate,
-- n_llm_no_verdict (unparseable, tie or error), n_samples (samples those pairs decide / answers
-- those tallies count), llm_tokens; then row_type 'disagreement' -- one per disagreeing pair or
-- problem, with unit_id, problem_id (tallies), gold and answer (verdicts), and what each side said.
with samples as (
    select
        j.judge_unit_id as unit_id,
        j.label,
        j.answer,
        j.grader_abstained,
        -- the grader's own verdict, before any LLM verdict was folded into judged_generations
        case j.label_source
            when 'vote' then coalesce(g.matches_top_answer, false)
            when 'dataset' then coalesce(g.matches_expected, false)
        end as symbolic_verdict
    from {{ ref('judged_generations') }} as j
    inner join {{ ref('int_sample_grades') }} as g using (run_id, problem_id, sample_idx)
    where j.is_well_formed and j.label is not null and j.answer is not null
),

pairs as (
    select
        unit_id,
        any_value(label) as label,
        any_value(answer) as answer,
        count(*) as n_samples,
        bool_or(grader_abstained) as grader_abstained,
        bool_or(symbolic_verdict) as symbolic_verdict
    from samples
    group by unit_id
),

comparisons as (
    select
        'verdict' as comparison,
        case when p.grader_abstained then 'grader_abstained' else 'grader_decided' end as scope,
        p.unit_id,
        null::varchar as problem_id,
        p.label as gold,
        p.answer,
        case when p.symbolic_verdict then 'match' else 'no_match' end as symbolic,
        v.llm_status as llm,
        p.symbolic_verdict = v.llm_verdict as agrees,
        p.n_samples,
        v.prompt_tokens + v.completion_tokens as llm_tokens
    from pairs as p
    inner join {{ ref('int_llm_verdicts') }} as v using (unit_id)

    union all

    select
        'tally',
        case when t.symbolic_abstained then 'grader_abstained' else 'grader_decided' end,
        t.vote_unit_id,
        t.problem_id,
        null::varchar,
        null::varchar,
        t.top_answer || ' (' || t.top_votes || '/' || t.n_answered || ')',
        case
            when t.llm_status = 'parsed'
                then t.llm_top_answer || ' (' || t.llm_top_votes || '/' || t.llm_total || ')'
            else t.llm_status
        end,
        t.top_agrees,
        t.n_answered,
        t.llm_prompt_tokens + t.llm_completion_tokens
    from {{ ref('int_llm_tallies') }} as t
    where t.llm_status is not null
),

grid as (
    select c.comparison, s.scope
    from (values ('verdict'), ('tally')) as c(comparison)
    cross join (values ('all'), ('grader_abstained'), ('grader_decided')) as s(scope)
),

summary as (
    select
        g.comparison,
        g.scope,
        count(c.unit_id) as n_llm,
        count(c.agrees) as n_compared,
        count(*) filter (where c.agrees) as n_agree,
        count(*) filter (where not c.agrees) as n_disagree,
        (count(*) filter (where c.agrees))::double / nullif(count(c.agrees), 0) as agreement_rate,
        count(c.unit_id) - count(c.agrees) as n_llm_no_verdict,
        coalesce(sum(c.n_samples), 0)::bigint as n_samples,
        coalesce(sum(c.llm_tokens), 0)::bigint as llm_tokens
    from grid as g
    left join comparisons as c
        on c.comparison = g.comparison and (g.scope = 'all' or c.scope = g.scope)
    group by g.comparison, g.scope
)

select
    'summary' as row_type,
    comparison,
    scope,
    n_llm,
    n_compared,
    n_agree,
    n_disagree,
    agreement_rate,
    n_llm_no_verdict,
    n_samples,
    llm_tokens,
    null::varchar as unit_id,
    null::varchar as problem_id,
    null::varchar as gold,
    null::varchar as answer,
    null::varchar as symbolic,
    null::varchar as llm
from summary

union all

select
    'disagreement',
    comparison,
    scope,
    null,
    null,
    null,
    null,
    null,
    null,
    n_samples,
    llm_tokens,
    unit_id,
    problem_id,
    gold,
    answer,
    symbolic,
    llm
from comparisons
where not agrees
