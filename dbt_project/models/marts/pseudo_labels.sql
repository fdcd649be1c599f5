-- The teacher's vote and the label curation trusts: one row per problem and vote (vote_run_id).
-- var vote_scope 'pooled' (default): one row per problem, vote_run_id NULL, the vote of every
-- voting run together. 'per_run' (upstream): one row per problem and run that votes on it or is
-- curated (its samples are judged against this row), vote_run_id = the run; a run that does not
-- vote (var vote_runs) gets the dataset label; a problem no such run sampled, one row with
-- vote_run_id NULL. label_source: 'vote' when the vote is confident (vote_passes), else
-- 'dataset' when the problem has a dataset label, else 'none' (label NULL).
-- n_samples: the samples of the vote (voting runs; with per_run that run's), n_answered those
-- that vote, top_share = top_votes / n_answered or / n_samples (var vote_denominator).
with voting_samples as (
    select problem_id, {{ vote_run_id('run_id') }} as vote_run_id, count(*) as n_samples
    from {{ ref('int_samples') }}
    where {{ is_voting_run('run_id', 'purpose') }}
    group by all
),

label_rows as (
    {%- if votes_per_run() %}
    select distinct s.problem_id, s.run_id as vote_run_id
    from {{ ref('int_samples') }} as s
    inner join {{ ref('stg_lake__problems') }} as p using (problem_id)
    where {{ is_voting_run('s.run_id', 's.purpose') }} or {{ is_curated_run('s.purpose') }}
    union all
    select p.problem_id, cast(null as varchar)
    from {{ ref('stg_lake__problems') }} as p
    where not exists (
        select 1 from {{ ref('int_samples') }} as s
        where s.problem_id = p.problem_id
          and ({{ is_voting_run('s.run_id', 's.purpose') }} or {{ is_curated_run('s.purpose') }})
    )
    {%- else %}
    select problem_id, cast(null as varchar) as vote_run_id
    from {{ ref('stg_lake__problems') }}
    {%- endif %}
),

joined as (
    select
        p.problem_id,
        r.vote_run_id,
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
    from label_rows as r
    inner join {{ ref('stg_lake__problems') }} as p on p.problem_id = r.problem_id
    left join voting_samples as n
        on n.problem_id = r.problem_id and n.vote_run_id is not distinct from r.vote_run_id
    left join {{ ref('int_problem_votes') }} as v
        on v.problem_id = r.problem_id and v.vote_run_id is not distinct from r.vote_run_id
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
    source,
    vote_run_id
from joined
