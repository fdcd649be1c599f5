{{ config(materialized='incremental', on_schema_change='append_new_columns') }}
-- answers_equal(gold, answer) for every distinct (gold, answer) pair whose canonical keys differ,
-- where gold is a problem's dataset/benchmark label or its top voted answer. Equal keys need no
-- call; a different key is not yet a verdict (0.33 vs 1/3, forms sympy leaves apart), so the
-- grader decides. Pairs are keyed by the two strings, not the problem, so "5 vs 7" is graded
-- once for the whole lake, and incrementally only pairs never compared before.
with answered as (
    select distinct problem_id, answer_hash, answer_key
    from {{ ref('int_sample_answers') }}
    where answer_hash is not null
),

golds as (
    select p.problem_id, d.answer_hash as gold_hash, d.answer_key as gold_key
    from {{ ref('stg_lake__problems') }} as p
    inner join {{ ref('int_answer_dictionary') }} as d on d.answer_hash = p.expected_answer_hash
    union
    select v.problem_id, md5_number(v.top_answer), v.top_key
    from {{ ref('int_problem_votes') }} as v
),

pairs as (
    select distinct g.gold_hash, a.answer_hash as pred_hash
    from golds as g
    inner join answered as a using (problem_id)
    where g.gold_key is distinct from a.answer_key
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
