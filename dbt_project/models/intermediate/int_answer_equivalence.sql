{{ config(materialized='incremental', unique_key=['gold_hash', 'pred_hash'], incremental_strategy='delete+insert',
          on_schema_change='append_new_columns',
          post_hook="delete from {{ this }} where outcome = 'timeout' and graded_in <> '{{ invocation_id }}'") }}
-- The grader's outcome for every distinct (gold, answer) pair whose canonical keys differ, where
-- gold is a problem's dataset/benchmark label or its top voted answer. Equal keys need no call;
-- a different key is not yet a verdict (0.33 vs 1/3, forms sympy leaves apart), so the grader
-- decides. Pairs are keyed by the two strings, not the problem, so "5 vs 7" is graded once for
-- the whole lake, and incrementally only pairs never decided before.
-- `outcome` is 'equal', 'not_equal' or why the grader could not decide: 'timeout' (it ran out of
-- its CPU budget), 'refused' (too expensive to evaluate), 'unparseable' (nothing to compare);
-- `is_equal` is NULL then. A time-out is never kept as a verdict: the next build grades the pair
-- again if it still needs it, and drops it if not (the post-hook); rows from before outcomes were
-- stored, where a time-out read as "not equal", are graded again too.
{%- set stored_columns = adapter.get_columns_in_relation(this) | map(attribute='name') | map('lower') | list
    if is_incremental() else [] %}
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
            {%- if 'outcome' in stored_columns %}
            and (seen.outcome in ('equal', 'not_equal', 'refused', 'unparseable') or seen.is_equal)
            {%- else %}
            and seen.is_equal
            {%- endif %}
    )
    {% endif %}
),

texts as (
    select n.gold_hash, n.pred_hash, gold.answer as gold_answer, pred.answer as pred_answer
    from new_pairs as n
    inner join {{ ref('int_answer_dictionary') }} as gold on gold.answer_hash = n.gold_hash
    inner join {{ ref('int_answer_dictionary') }} as pred on pred.answer_hash = n.pred_hash
),

graded as (
    select *, grade_outcome(gold_answer, pred_answer) as outcome
    from texts
)

select
    gold_hash,
    pred_hash,
    gold_answer,
    pred_answer,
    case outcome when 'equal' then true when 'not_equal' then false end as is_equal,
    '{{ invocation_id }}' as graded_in,
    outcome,
    case when outcome not in ('equal', 'not_equal') then outcome end as undecided_reason
from graded
