-- Votes per problem x vote (vote_run_id: NULL = pooled over every voting run, else one run; var
-- vote_scope) x canonical key, over the samples of the voting runs (var vote_runs; default every
-- teacher run) that cast a vote (macro is_vote; var vote_denominator): 'answered' -- finished,
-- no error, answer extracted, and share = votes / those; 'all' (upstream) -- every sample with
-- an answer votes, and share = votes / every sample of the vote (n_vote_samples).
-- The display form of a key is its most frequent surface form (ties: shortest, then smallest).
with vote_samples as (
    select problem_id, {{ vote_run_id('run_id') }} as vote_run_id, answer_key, answer, has_error, is_truncated
    from {{ ref('int_sample_answers') }}
    where {{ is_voting_run('run_id', 'purpose') }}
),

denominators as (
    select problem_id, vote_run_id, count(*) as n_vote_samples
    from vote_samples
    group by all
),

surface_forms as (
    select problem_id, vote_run_id, answer_key, answer, count(*) as n
    from vote_samples
    where {{ is_vote('answer_key', 'has_error', 'is_truncated') }}
    group by all
),

per_key as (
    select
        problem_id,
        vote_run_id,
        answer_key,
        sum(n)::bigint as votes,
        first(answer order by n desc, length(answer), answer) as display_answer,
        count(*) as n_surface_forms
    from surface_forms
    group by problem_id, vote_run_id, answer_key
),

counted as (
    select
        k.*,
        sum(k.votes) over (partition by k.problem_id, k.vote_run_id)::bigint as n_answered,
        {%- if vote_counts_every_sample() %}
        d.n_vote_samples
        {%- else %}
        sum(k.votes) over (partition by k.problem_id, k.vote_run_id)::bigint as n_vote_samples
        {%- endif %}
    from per_key as k
    inner join denominators as d
        on d.problem_id = k.problem_id and d.vote_run_id is not distinct from k.vote_run_id
)

select
    problem_id,
    answer_key,
    display_answer,
    votes,
    n_surface_forms,
    n_answered,
    votes::double / n_vote_samples as share,
    row_number() over (
        partition by problem_id, vote_run_id
        order by votes desc, length(display_answer), display_answer, answer_key
    ) as vote_rank,
    vote_run_id,
    n_vote_samples
from counted
