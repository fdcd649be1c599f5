-- One row per sample of the curated runs (var curation_purposes): format flags, the answer, the
-- label it is judged against, and the first rule it fails (`reject_reason`; NULL = keep).
with samples as (
    select
        s.* exclude (matches_top_answer, matches_expected),
        l.label,
        l.label_source,
        -- Format rules: everything but the label check.
        s.problem_known and not s.has_error and s.has_completion and not s.is_truncated
            and s.has_reasoning and s.has_final and s.has_boxed and s.answer is not null
            as is_well_formed,
        coalesce(s.matches_top_answer, false) as matches_top_answer,
        coalesce(s.matches_expected, false) as matches_dataset_label
    from {{ ref('int_sample_grades') }} as s
    left join {{ ref('pseudo_labels') }} as l on l.problem_id = s.problem_id
    where {{ is_curated_run('s.purpose') }}
),

judged as (
    select
        *,
        case
            when label_source = 'vote' then matches_top_answer
            when label_source = 'dataset' then matches_dataset_label
            else false
        end as is_consistent
    from samples
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
    n_copies,
    content_hash,
    is_benchmark_problem,
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
            when not has_reasoning then 'no_reasoning'
            when not has_final then 'no_final'
            when not has_boxed then 'no_boxed'
            when answer is null then 'no_answer'
            when label is null then 'no_label'
            when not is_consistent then 'inconsistent'
        end as reject_reason
    from judged
)
