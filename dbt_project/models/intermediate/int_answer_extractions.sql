{{ config(materialized='incremental', on_schema_change='append_new_columns') }}
-- The answer each distinct answer span commits to. Incremental: the grader's extract_answer runs
-- only on spans no earlier build has seen (a span is the final text from its last \boxed on,
-- so spans repeat a lot across samples and runs).
with spans as (
    select answer_span_hash, any_value(answer_span) as answer_span
    from {{ ref('int_samples') }}
    where answer_span_hash is not null
    group by answer_span_hash
),

new_spans as (
    select spans.*
    from spans
    {% if is_incremental() %}
    where not exists (select 1 from {{ this }} as seen where seen.answer_span_hash = spans.answer_span_hash)
    {% endif %}
),

extracted as (
    select answer_span_hash, answer_span, nullif(trim(extract_answer(answer_span)), '') as answer
    from new_spans
)

select
    answer_span_hash,
    answer_span,
    answer,
    md5_number(answer) as answer_hash,
    '{{ invocation_id }}' as graded_in
from extracted
