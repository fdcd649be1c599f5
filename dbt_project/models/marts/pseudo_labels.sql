-- One row per problem: the teacher's vote and the label curation trusts.
-- label_source: 'vote' when the vote is confident (vote_passes), else 'dataset' when the problem
-- has a dataset label, else 'none' (label NULL).
with voting_samples as (
    select problem_id, count(*) as n_samples
    from {{ ref('int_samples') }}
    where {{ is_voting_run('run_id', 'purpose') }}
    group by problem_id
),

joined as (
    select
        p.problem_id,
        p.source,
        coalesce(n.n_samples, 0) as n_samples,
        coalesce(v.n_answered, 0) as n_answered,
        v.top_answer,
        v.top_key,
        coalesce(v.top_votes, 0) as top_votes,
        v.top_share,
        v.runner_up_share,
        p.expected_answer as dataset_label,
        {{ answers_match('gold.answer_key', 'v.top_key', 'q') }} as dataset_agrees,
        coalesce(v.vote_passes, false) as confident,
        gold.answer_key as dataset_key
    from {{ ref('stg_lake__problems') }} as p
    left join voting_samples as n on n.problem_id = p.problem_id
    left join {{ ref('int_problem_votes') }} as v on v.problem_id = p.problem_id
    left join {{ ref('int_answer_dictionary') }} as gold on gold.answer_hash = p.expected_answer_hash
    left join {{ ref('int_answer_equivalence') }} as q
        on q.gold_hash = p.expected_answer_hash and q.pred_hash = md5_number(v.top_answer)
)

select
    problem_id,
    n_samples,
    n_answered,
    top_answer,
    top_key,
    top_votes,
    top_share,
    runner_up_share,
    dataset_label,
    dataset_agrees,
    case when confident then top_answer else dataset_label end as label,
    case when confident then 'vote' when dataset_label is not null then 'dataset' else 'none' end
        as label_source,
    confident,
    case when confident then top_key else dataset_key end as label_key,
    source
from joined
