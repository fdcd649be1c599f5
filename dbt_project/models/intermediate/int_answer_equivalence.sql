{{ config(materialized='incremental', on_schema_change='append_new_columns') }}
-- answers_equal(dataset label, answer) for the distinct (label, answer) pairs that keys cannot
-- decide: different keys where at least one side is a fallback (unparseable) key. Where both keys
-- are real canonical keys they decide alone, so the expensive comparison runs on few pairs, and
-- incrementally only on pairs never compared before.
with pairs as (
    select distinct
        gold.answer_hash as gold_hash,
        pred.answer_hash as pred_hash
    from {{ ref('int_samples') }} as s
    inner join {{ ref('int_answer_extractions') }} as e on e.answer_span_hash = s.answer_span_hash
    inner join {{ ref('stg_lake__problems') }} as p on p.problem_id = s.problem_id
    inner join {{ ref('int_answer_dictionary') }} as gold on gold.answer_hash = p.expected_answer_hash
    inner join {{ ref('int_answer_dictionary') }} as pred on pred.answer_hash = e.answer_hash
    where {{ keys_undecided('gold', 'pred') }}
),

new_pairs as (
    select pairs.*
    from pairs
    {% if is_incremental() %}
    where not exists (
        select 1 from {{ this }} as seen
        where seen.gold_hash = pairs.gold_hash and seen.pred_hash = pairs.pred_hash
    )
    {% endif %}
),

texts as (
    select n.gold_hash, n.pred_hash, gold.answer as gold_answer, pred.answer as pred_answer
    from new_pairs as n
    inner join {{ ref('int_answer_dictionary') }} as gold on gold.answer_hash = n.gold_hash
    inner join {{ ref('int_answer_dictionary') }} as pred on pred.answer_hash = n.pred_hash
)

select
    gold_hash,
    pred_hash,
    gold_answer,
    pred_answer,
    coalesce(answers_equal(gold_answer, pred_answer), false) as is_equal,
    '{{ invocation_id }}' as graded_in
from texts
