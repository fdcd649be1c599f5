-- One row per sample of every run: its extracted answer and canonical key (int_sample_answers),
-- judged against the problem's dataset/benchmark
-- label (`matches_expected`) and against the top answer of the vote the sample belongs to
-- (`matches_top_answer`; the pooled vote, or with var vote_scope per_run its run's), by equal
-- canonical keys or else the grader's answers_equal. NULL when either side is missing.
-- Where the grader could not decide a pair (int_answer_equivalence.outcome: a time-out, a refused
-- or an unreadable side), the match is false and `expected_undecided` / `top_undecided` say why.
-- Curation (judged_generations, threshold_sweep) and evaluation marts build on this.
select
    s.*,
    p.expected_answer,
    p.expected_answer_hash,
    gold.answer_key as expected_key,
    v.top_answer,
    v.top_key,
    {{ answers_match('gold.answer_key', 's.answer_key', 'qe') }} as matches_expected,
    {{ answers_match('v.top_key', 's.answer_key', 'qt') }} as matches_top_answer,
    qe.undecided_reason as expected_undecided,
    qt.undecided_reason as top_undecided
from {{ ref('int_sample_answers') }} as s
left join {{ ref('stg_lake__problems') }} as p on p.problem_id = s.problem_id
left join {{ ref('int_answer_dictionary') }} as gold on gold.answer_hash = p.expected_answer_hash
left join {{ ref('int_problem_votes') }} as v
    on v.problem_id = s.problem_id and v.vote_run_id is not distinct from {{ vote_run_id('s.run_id') }}
left join {{ ref('int_answer_equivalence') }} as qe
    on qe.gold_hash = p.expected_answer_hash and qe.pred_hash = s.answer_hash
left join {{ ref('int_answer_equivalence') }} as qt
    on qt.gold_hash = md5_number(v.top_answer) and qt.pred_hash = s.answer_hash
