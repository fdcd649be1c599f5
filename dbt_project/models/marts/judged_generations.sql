-- One row per sample of the curated runs (var curation_purposes): format flags, the answer, the
-- label it is judged against, and the first rule it fails (`reject_reason`; NULL = keep).
with samples as (
    select
        s.* exclude (matches_top_answer, matches_expected),
        l.label,
        l.label_source,
        l.vote_run_id,
        -- Format rules: everything but the label check.
        s.problem_known and not s.has_error and s.has_completion and not s.is_truncated
            and (s.has_reasoning or not {{ var_sql('require_reasoning', 'boolean') }}) and s.has_final
            and (s.has_boxed or not {{ var_sql('require_boxed', 'boolean') }}) and s.answer is not null
            as is_well_formed,
        coalesce(s.matches_top_answer, false) as matches_top_answer,
        coalesce(s.matches_expected, false) as matches_dataset_label
    from {{ ref('int_sample_grades') }} as s
    -- the label of the vote this sample belongs to (var vote_scope: pooled, or its own run's)
    left join {{ ref('pseudo_labels') }} as l
        on l.problem_id = s.problem_id and l.vote_run_id is not distinct from {{ vote_run_id('s.run_id') }}
    where {{ is_curated_run('s.purpose') }}
),

-- LLM judge fallback (evaluation/judge.py, `reasonlite judge`): where the grader abstains on a
-- (gold, answer) pair (grader_abstains: keys differ, no equivalence found, a side unparseable or
-- free-form text), a parsed LLM verdict on that pair (int_llm_verdicts; unit id
-- 'judge:' || md5(gold || chr(31) || answer)) replaces the grader's, in both match flags, so the
-- threshold sweep sees the same verdicts.
abstentions as (
    select
        *,
        'judge:' || md5(top_answer || chr(31) || answer) as top_unit_id,
        'judge:' || md5(expected_answer || chr(31) || answer) as dataset_unit_id,
        -- (the guard only spares the UDF the many rows it would answer false anyway)
        case when top_key is distinct from answer_key and not matches_top_answer
            then coalesce(grader_abstains(top_key, answer_key, matches_top_answer), false) else false
        end as top_abstained,
        case when expected_key is distinct from answer_key and not matches_dataset_label
            then coalesce(grader_abstains(expected_key, answer_key, matches_dataset_label), false) else false
        end as dataset_abstained
    from samples
),

refereed as (
    select
        a.* exclude (top_unit_id, dataset_unit_id, top_abstained, dataset_abstained) replace (
            case when a.top_abstained and vt.llm_verdict is not null then vt.llm_verdict
                else a.matches_top_answer end as matches_top_answer,
            case when a.dataset_abstained and vd.llm_verdict is not null then vd.llm_verdict
                else a.matches_dataset_label end as matches_dataset_label
        ),
        case a.label_source when 'vote' then a.top_unit_id when 'dataset' then a.dataset_unit_id end
            as judge_unit_id,
        a.is_well_formed and case a.label_source when 'vote' then a.top_abstained
            when 'dataset' then a.dataset_abstained else false end as grader_abstained,
        case a.label_source when 'vote' then vt.llm_verdict when 'dataset' then vd.llm_verdict end
            as llm_verdict
    from abstentions as a
    left join {{ ref('int_llm_verdicts') }} as vt on vt.unit_id = a.top_unit_id
    left join {{ ref('int_llm_verdicts') }} as vd on vd.unit_id = a.dataset_unit_id
),

judged as (
    select
        *,
        case
            when label_source = 'vote' then matches_top_answer
            when label_source = 'dataset' then matches_dataset_label
            else false
        end as is_consistent
    from refereed
)

select
    run_id,
    problem_id,
    sample_idx,
    answer,
    answer_key,
    label,
    label_source,
    is_consistent,
    has_reasoning,
    has_final,
    has_boxed,
    is_truncated,
    has_error,
    reject_reason is null as keep,
    reject_reason,
    -- more context for analysis
    purpose,
    model,
    reasoning_level,
    stratum,
    finish_reason,
    prompt_tokens,
    completion_tokens,
    has_completion,
    problem_known,
    is_well_formed,
    matches_top_answer,
    matches_dataset_label,
    -- who decided is_consistent: 'symbolic' (the grader), 'llm' (the grader abstained and the LLM
    -- judge gave a verdict), 'none' (no label check: not well-formed or no label; or abstained and
    -- no LLM verdict yet, so the grader's conservative answer stands)
    case
        when not is_well_formed or label is null then 'none'
        when not grader_abstained then 'symbolic'
        when llm_verdict is not null then 'llm'
        else 'none'
    end as judge_source,
    grader_abstained,
    llm_verdict,
    judge_unit_id,
    n_copies,
    content_hash,
    is_benchmark_problem,
    vote_run_id,
    _source_file,
    _source_row
from (
    select
        *,
        case
            when not problem_known then 'unknown_problem'
            when has_error then 'error'
            when not has_completion then 'null_completion'
            when is_truncated then 'truncated'
            when not has_reasoning and {{ var_sql('require_reasoning', 'boolean') }} then 'no_reasoning'
            when not has_final then 'no_final'
            when not has_boxed and {{ var_sql('require_boxed', 'boolean') }} then 'no_boxed'
            when answer is null then 'no_answer'
            when label is null then 'no_label'
            when not is_consistent then 'inconsistent'
        end as reject_reason
    from judged
)
