-- The vote outcome per problem and vote (vote_run_id, see int_answer_tallies): top answer, its
-- share, the runner-up's share, and whether the vote is confident enough to become the label
-- (macro vote_passes: share >= vote_ratio and votes >= min_votes).
with ranked as (
    select
        problem_id,
        vote_run_id,
        max(n_answered) as n_answered,
        max(n_vote_samples) as n_vote_samples,
        count(*) as n_distinct_answers,
        max(case when vote_rank = 1 then answer_key end) as top_key,
        max(case when vote_rank = 1 then display_answer end) as top_answer,
        max(case when vote_rank = 1 then votes end) as top_votes,
        max(case when vote_rank = 1 then share end) as top_share,
        coalesce(max(case when vote_rank = 2 then share end), 0.0) as runner_up_share
    from {{ ref('int_answer_tallies') }}
    group by problem_id, vote_run_id
)

select
    *,
    {{ vote_passes('top_share', 'top_votes') }} as vote_passes
from ranked
