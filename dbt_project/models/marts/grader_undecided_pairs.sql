-- The (gold, answer) pairs the grader could not decide, with the reason, and how many samples of
-- which runs they touch: what a larger budget (REASONLITE_GRADER_TIMEOUT) or the LLM judge
-- (`reasonlite judge`) can settle. `undecided_reason`: 'timeout' (the grader ran out of its CPU
-- budget; every build grades these pairs again), 'refused' (an answer too expensive to evaluate),
-- 'unparseable' (neither side read as math). Until decided, such a sample does not match its
-- label (curation_funnel counts them as grader_undecided). Only pairs some sample still uses.
with uses as (
    select expected_answer_hash as gold_hash, answer_hash as pred_hash, 'dataset_label' as gold_role,
           run_id, purpose, problem_id
    from {{ ref('int_sample_grades') }}
    where expected_undecided is not null
    union all
    select md5_number(top_answer), answer_hash, 'top_answer', run_id, purpose, problem_id
    from {{ ref('int_sample_grades') }}
    where top_undecided is not null
)

select
    q.gold_answer,
    q.pred_answer,
    q.undecided_reason,
    count(*) as n_samples,
    count(distinct u.problem_id) as n_problems,
    list(distinct u.run_id order by u.run_id) as run_ids,
    list(distinct u.purpose order by u.purpose) as purposes,
    list(distinct u.gold_role order by u.gold_role) as gold_roles,
    q.gold_hash,
    q.pred_hash,
    q.graded_in
from {{ ref('int_answer_equivalence') }} as q
inner join uses as u using (gold_hash, pred_hash)
where q.undecided_reason is not null
group by all
order by n_samples desc, q.gold_answer, q.pred_answer
