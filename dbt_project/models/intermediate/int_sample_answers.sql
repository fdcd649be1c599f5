-- One row per sample of every run (teacher and eval alike): its extracted answer, canonical key,
-- and whether it matches the problem's dataset / benchmark answer (`matches_expected`). Curation
-- builds on it, and so can evaluation marts (filter by `purpose`).
select
    s.* exclude (answer_span, answer_span_hash),
    e.answer,
    e.answer_hash,
    pred.answer_key,
    pred.key_is_fallback as answer_key_is_fallback,
    p.expected_answer,
    p.expected_answer_hash,
    gold.answer_key as expected_key,
    {{ answers_match('gold', 'pred', 'q') }} as matches_expected
from {{ ref('int_samples') }} as s
left join {{ ref('int_answer_extractions') }} as e on e.answer_span_hash = s.answer_span_hash
left join {{ ref('int_answer_dictionary') }} as pred on pred.answer_hash = e.answer_hash
left join {{ ref('stg_lake__problems') }} as p on p.problem_id = s.problem_id
left join {{ ref('int_answer_dictionary') }} as gold on gold.answer_hash = p.expected_answer_hash
left join {{ ref('int_answer_equivalence') }} as q
    on q.gold_hash = gold.answer_hash and q.pred_hash = pred.answer_hash
