-- One row per sample of every run (teacher, eval, ...): light columns, format flags, stratum and
-- the answer span the grader reads. Long texts stay in the lake; `_source_file/_source_row` fetch
-- them again for the few marts that need them.
with samples as (
select
    g.run_id,
    g.problem_id,
    g.sample_idx,
    coalesce(r.purpose, {{ var_sql('unknown_run_purpose', 'text') }}) as purpose,
    r.run_id is not null as run_known,
    coalesce(g.model, r.model) as model,
    coalesce(g.reasoning_level, r.reasoning_level) as reasoning_level,
    g.finish_reason,
    g.prompt_tokens,
    g.completion_tokens,
    g.created_at,
    g.n_copies,
    p.problem_id is not null as problem_known,
    p.source as problem_source,
    coalesce(p.is_benchmark, false) as is_benchmark_problem,
    g.error is not null as has_error,
    coalesce(length(g.completion) > 0, false) as has_completion,
    coalesce(regexp_matches(g.reasoning, '\S'), false) as has_reasoning,
    coalesce(regexp_matches(g.final, '\S'), false) as has_final,
    coalesce(contains(g.final, '\boxed') or contains(g.final, '\fbox'), false) as has_boxed,
    coalesce(g.finish_reason = 'length', false) as is_truncated,
    {{ stratum('coalesce(g.reasoning_level, r.reasoning_level)', 'g.completion_tokens') }} as stratum,
    {{ answer_span('g.final') }} as answer_span,
    -- Same problem, same text = same example (64-bit hash, compared within one problem only).
    hash(g.reasoning, g.final) as content_hash,
    g._source_file,
    g._source_row
from {{ ref('stg_lake__generations') }} as g
left join {{ ref('stg_lake__runs') }} as r on r.run_id = g.run_id
left join {{ ref('stg_lake__problems') }} as p on p.problem_id = g.problem_id
)

select
    * exclude (answer_span),
    answer_span,
    md5_number(answer_span) as answer_span_hash
from samples
