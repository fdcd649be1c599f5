-- One row per sample of every run (teacher and eval alike): int_samples plus the answer the
-- grader extracted and its canonical key. Joins on hashes only; the grader already ran in the
-- incremental dictionaries.
select
    s.* exclude (answer_span, answer_span_hash),
    e.answer,
    e.answer_hash,
    d.answer_key,
    d.key_is_fallback as answer_key_is_fallback
from {{ ref('int_samples') }} as s
left join {{ ref('int_answer_extractions') }} as e on e.answer_span_hash = s.answer_span_hash
left join {{ ref('int_answer_dictionary') }} as d on d.answer_hash = e.answer_hash
