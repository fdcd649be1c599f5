-- Votes per problem x canonical key, over the samples of the voting runs (var vote_runs; default
-- every teacher run) that committed to an answer: no error, not truncated, answer extracted.
-- The display form of a key is its most frequent surface form (ties: shortest, then smallest).
with voters as (
    select problem_id, answer_key, answer
    from {{ ref('int_sample_answers') }}
    where {{ is_voting_run('run_id', 'purpose') }}
      and answer_key is not null
      and not has_error
      and not is_truncated
),

surface_forms as (
    select problem_id, answer_key, answer, count(*) as n
    from voters
    group by all
),

per_key as (
    select
        problem_id,
        answer_key,
        sum(n)::bigint as votes,
        first(answer order by n desc, length(answer), answer) as display_answer,
        count(*) as n_surface_forms
    from surface_forms
    group by problem_id, answer_key
)

select
    problem_id,
    answer_key,
    display_answer,
    votes,
    n_surface_forms,
    sum(votes) over (partition by problem_id)::bigint as n_answered,
    votes::double / sum(votes) over (partition by problem_id) as share,
    row_number() over (
        partition by problem_id order by votes desc, length(display_answer), display_answer, answer_key
    ) as vote_rank
from per_key
