{{ config(materialized='incremental', unique_key='answer_hash', incremental_strategy='delete+insert',
          on_schema_change='append_new_columns') }}
-- Canonical key of every distinct answer string: extracted answers of all runs and the dataset
-- labels (`expected_answer`) of all problems. Incremental: canonical_key runs only on strings not
-- in the dictionary yet. Equal keys mean mathematically equal answers wherever the grader can
-- decide; an unparseable answer gets a normalized-string key flagged `key_is_fallback`.
-- Fallback keys are graded again on every build: they are few, and the grader also falls back
-- when a parse ran out of time on a loaded machine, which must not stick.
with answers as (
    select answer_hash, answer from {{ ref('int_answer_extractions') }} where answer is not null
    union all
    select md5_number(expected_answer), expected_answer
    from {{ ref('stg_lake__problems') }}
    where expected_answer is not null
),

distinct_answers as (
    select answer_hash, any_value(answer) as answer
    from answers
    group by answer_hash
),

new_answers as (
    select distinct_answers.*
    from distinct_answers
    {% if is_incremental() %}
    where not exists (
        select 1 from {{ this }} as seen
        where seen.answer_hash = distinct_answers.answer_hash and not seen.key_is_fallback
    )
    {% endif %}
),

keyed as (
    select answer_hash, answer, canonical_key(answer) as answer_key
    from new_answers
)

select
    answer_hash,
    answer,
    answer_key,
    coalesce({{ key_is_fallback("answer_key") }}, false) as key_is_fallback,
    '{{ invocation_id }}' as graded_in
from keyed
