{{ config(materialized='incremental', unique_key=['_source_file', '_source_row', 'gold_hash'],
          incremental_strategy='delete+insert', on_schema_change='append_new_columns',
          post_hook="delete from {{ this }} where outcome = 'timeout' and graded_in <> '{{ invocation_id }}'") }}
-- Upstream's verdict on every scored evaluation sample (scoring 'upstream' of the eval marts): the
-- grader's grade_upstream_outcome(gold, whole completion) -- the last \boxed anywhere in the
-- response (reasoning included), then "The answer is: ..." on its last line, then math-verify over
-- the whole response, as AMD-AGI/ReasonLite eval/eval.py:694-708 scores (evaluation/grading/upstream.py).
-- One row per sample text (its Parquet identity) and gold answer. Incremental: only samples not graded
-- before are read from the lake and graded; a time-out is graded again by the next build (post-hook).
-- `outcome`: 'equal', 'not_equal' or why the grader could not decide ('timeout', 'refused',
-- 'unparseable'); `is_equal` is NULL then.
-- The completions are read only from the lake parts holding samples still to grade, listed at
-- compile time and read by name (macro read_lake_parts): a join with the lake view would read the
-- long texts of every part on every build, eval runs or not.
{%- set pending_parts = [] %}
{%- if execute %}
  {%- set pending_query %}
    select distinct s._source_file
    from {{ ref('int_sample_grades') }} as s
    where s.purpose = 'eval' and not s.has_error and s.expected_answer is not null
    {%- if is_incremental() %}
      and not exists (
        select 1 from {{ this }} as seen
        where seen._source_file = s._source_file and seen._source_row = s._source_row
            and seen.gold_hash = s.expected_answer_hash and seen.outcome is distinct from 'timeout'
      )
    {%- endif %}
    order by 1
  {%- endset %}
  {%- set pending_parts = run_query(pending_query).columns[0].values() | list %}
{%- endif %}
with scored as (
    select distinct _source_file, _source_row, expected_answer_hash as gold_hash, expected_answer
    from {{ ref('int_sample_grades') }}
    where purpose = 'eval' and not has_error and expected_answer is not null
),

new_samples as (
    select scored.*
    from scored
    {% if is_incremental() %}
    where not exists (
        select 1 from {{ this }} as seen
        where seen._source_file = scored._source_file and seen._source_row = scored._source_row
            and seen.gold_hash = scored.gold_hash and seen.outcome is distinct from 'timeout'
    )
    {% endif %}
),

lake_texts as (
{%- if pending_parts | length > 0 %}
    -- {{ pending_parts | length }} part(s) with samples to grade
    select cast(filename as varchar) as _source_file, cast(file_row_number as bigint) as _source_row,
           cast(completion as varchar) as completion, cast(reasoning as varchar) as reasoning,
           cast("final" as varchar) as final
    from {{ read_lake_parts(pending_parts) }}
{%- else %}
    select cast(null as varchar) as _source_file, cast(null as bigint) as _source_row,
           cast(null as varchar) as completion, cast(null as varchar) as reasoning, cast(null as varchar) as final
    where false
{%- endif %}
),

graded as (
    select n._source_file, n._source_row, n.gold_hash,
           -- the raw completion; rows imported without one: their reasoning and final text
           grade_upstream_outcome(n.expected_answer, coalesce(g.completion, concat_ws(chr(10), g.reasoning, g.final), ''))
               as outcome
    from new_samples as n
    inner join lake_texts as g using (_source_file, _source_row)
)

select
    _source_file,
    _source_row,
    gold_hash,
    outcome,
    case outcome when 'equal' then true when 'not_equal' then false end as is_equal,
    case when outcome not in ('equal', 'not_equal') then outcome end as undecided_reason,
    '{{ invocation_id }}' as graded_in
from graded
