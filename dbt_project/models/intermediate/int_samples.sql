-- One row per sample of every run (teacher, eval, ...): light columns, format flags, stratum and
-- the answer span the grader reads. Long texts stay in the lake; `_source_file/_source_row` fetch
-- them again for the few marts that need them. The flags, span and content hash come from
-- int_generation_text_features (read once per lake part), so this rebuild reads light columns only.
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
    t.has_completion,
    t.has_reasoning,
    t.has_final,
    t.has_boxed,
    coalesce(g.finish_reason = 'length', false) as is_truncated,
    {{ stratum('coalesce(g.reasoning_level, r.reasoning_level)', 'g.completion_tokens') }} as stratum,
    t.content_hash,
    g._source_file,
    g._source_row,
    t.answer_span,
    t.answer_span_hash
from {{ ref('stg_lake__generations') }} as g
-- Inner: a part that a running generation wrote after int_generation_text_features listed the lake
-- has no features yet; its rows wait for the next build instead of failing this one.
inner join {{ ref('int_generation_text_features') }} as t
    on t._source_file = g._source_file and t._source_row = g._source_row
left join {{ ref('stg_lake__runs') }} as r on r.run_id = g.run_id
left join {{ ref('stg_lake__problems') }} as p on p.problem_id = g.problem_id
