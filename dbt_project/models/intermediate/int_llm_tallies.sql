-- One row per problem with voting answers (and vote: vote_run_id, see int_answer_tallies; with var
-- vote_scope per_run one row per run, all compared with the problem's one LLM tally, whose unit
-- id names the problem only): what `reasonlite vote-llm` sends (`answers`: the voting
-- samples' extracted answers in sample order -- the same samples int_answer_tallies counts), the
-- symbolic tally's outcome, and upstream's LLM tally where a vote run made one (units
-- 'vote:<problem_id>' of runs with purpose 'judge'; var judge_runs narrows them). The tally is
-- parsed by the ONE parser judge_tally(final) (evaluation/judge.py parse_tally): a JSON list of
-- {answer, count}, most votes first, NULL when the output is malformed. Of several LLM tallies of
-- a problem the latest parsed one counts. `symbolic_abstained`: the problem's answers have at
-- least two keys and one is unparseable or free-form text (grader_abstains), so the symbolic
-- grouping is in doubt; vote-llm sends only those unless --all.
{%- set runs = checked_var('judge_runs', 'texts') %}
with voters as (
    select problem_id, {{ vote_run_id('run_id') }} as vote_run_id, run_id, sample_idx, answer
    from {{ ref('int_sample_answers') }}
    where {{ is_voting_run('run_id', 'purpose') }}
      and {{ is_vote('answer_key', 'has_error', 'is_truncated') }}
),

inputs as (
    select problem_id, vote_run_id, list(answer order by run_id, sample_idx) as answers, count(*) as n_answered
    from voters
    group by problem_id, vote_run_id
),

doubt as (
    select t.problem_id, t.vote_run_id,
           bool_or(coalesce(grader_abstains(v.top_key, t.answer_key, false), false)) as symbolic_abstained
    from {{ ref('int_answer_tallies') }} as t
    inner join {{ ref('int_problem_votes') }} as v
        on v.problem_id = t.problem_id and v.vote_run_id is not distinct from t.vote_run_id
    group by t.problem_id, t.vote_run_id
),

llm_rows as (
    select
        substr(g.problem_id, length('vote:') + 1) as problem_id,
        g.run_id,
        g.sample_idx,
        g.error,
        g.prompt_tokens,
        g.completion_tokens,
        g.created_at,
        case when g.error is null then judge_tally(g.final) end as tally_json
    from {{ ref('stg_lake__generations') }} as g
    inner join {{ ref('stg_lake__runs') }} as r on r.run_id = g.run_id
    where r.purpose = 'judge'
      and starts_with(g.problem_id, 'vote:')
      {%- if runs | length > 0 %}
      and list_contains({{ var_sql('judge_runs', 'texts') }}, g.run_id)
      {%- endif %}
),

llm as (
    select
        problem_id,
        count(*) as n_llm_tallies,
        coalesce(sum(prompt_tokens), 0)::bigint as llm_prompt_tokens,
        coalesce(sum(completion_tokens), 0)::bigint as llm_completion_tokens,
        arg_max(run_id, struct_pack(ok := tally_json is not null, at := created_at, run_id := run_id)) as llm_run_id,
        arg_max(tally_json, struct_pack(ok := tally_json is not null, at := created_at, run_id := run_id)) as tally_json,
        bool_or(error is null) as any_output
    from llm_rows
    group by problem_id
),

parsed as (
    select
        *,
        from_json(tally_json, '[{"answer": "VARCHAR", "count": "BIGINT"}]') as llm_tally
    from llm
),

joined as (
    select
        i.problem_id,
        'vote:' || i.problem_id as vote_unit_id,
        i.n_answered,
        i.answers,
        coalesce(d.symbolic_abstained, false) as symbolic_abstained,
        v.n_distinct_answers,
        v.top_answer,
        v.top_key,
        v.top_votes,
        v.top_share,
        v.vote_passes,
        case
            when p.problem_id is null then null
            when p.llm_tally is not null then 'parsed'
            when p.any_output then 'unparseable'
            else 'error'
        end as llm_status,
        p.llm_tally,
        p.llm_tally[1].answer as llm_top_answer,
        p.llm_tally[1].count as llm_top_votes,
        list_sum(list_transform(p.llm_tally, lambda x: x.count))::bigint as llm_total,
        len(p.llm_tally) as llm_n_distinct_answers,
        p.llm_run_id,
        p.n_llm_tallies,
        p.llm_prompt_tokens,
        p.llm_completion_tokens,
        i.vote_run_id
    from inputs as i
    left join doubt as d
        on d.problem_id = i.problem_id and d.vote_run_id is not distinct from i.vote_run_id
    left join {{ ref('int_problem_votes') }} as v
        on v.problem_id = i.problem_id and v.vote_run_id is not distinct from i.vote_run_id
    left join parsed as p on p.problem_id = i.problem_id
)

select
    *,
    llm_top_votes::double / nullif(llm_total, 0) as llm_top_share,
    case when llm_top_answer is not null then {{ vote_passes('llm_top_votes::double / nullif(llm_total, 0)', 'llm_top_votes') }} end
        as llm_vote_passes,
    -- Same top answer? Equal canonical keys, else the grader's answers_equal (the LLM may rewrite
    -- "x=25" as "25"). Only problems with an LLM tally reach the grader here.
    case
        when llm_top_answer is null or top_answer is null then null
        when canonical_key(llm_top_answer) = top_key then true
        else coalesce(answers_equal(top_answer, llm_top_answer), false)
    end as top_agrees
from joined
