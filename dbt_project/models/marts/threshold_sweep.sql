-- What the vote rule would do for a grid of vote_ratio x min_votes (vars sweep_vote_ratios,
-- sweep_min_votes, plus the current vote_ratio / min_votes, flagged is_current): problems labeled
-- by vote, labels changed from the dataset, and solutions kept (= judged_generations.keep under
-- that rule). Build once, pick thresholds, rebuild with --vars. Problems are pseudo_labels rows:
-- with var vote_scope per_run, one per problem and run (each run's label is counted).
with grid as (
    select distinct cast(r.vote_ratio as double) as vote_ratio, cast(m.min_votes as integer) as min_votes
    from (
        select unnest({{ var_sql('sweep_vote_ratios', 'ratios') }})
        union all select {{ var_sql('vote_ratio', 'ratio') }}
    ) as r(vote_ratio)
    cross join (
        select unnest({{ var_sql('sweep_min_votes', 'counts') }})
        union all select {{ var_sql('min_votes', 'count') }}
    ) as m(min_votes)
),

samples as (
    select
        problem_id,
        vote_run_id,
        count(*) filter (where is_well_formed and matches_top_answer) as n_match_top,
        count(*) filter (where is_well_formed and matches_dataset_label) as n_match_dataset
    from {{ ref('judged_generations') }}
    where problem_known
    group by problem_id, vote_run_id
),

problems as (
    select
        l.problem_id,
        l.top_share,
        l.top_votes,
        l.dataset_label is not null as has_dataset_label,
        coalesce(l.dataset_agrees, false) as dataset_agrees,
        coalesce(s.n_match_top, 0) as n_match_top,
        coalesce(s.n_match_dataset, 0) as n_match_dataset
    from {{ ref('pseudo_labels') }} as l
    left join samples as s
        on s.problem_id = l.problem_id and s.vote_run_id is not distinct from l.vote_run_id
),

outcomes as (
    select
        g.vote_ratio,
        g.min_votes,
        p.*,
        {{ vote_passes('p.top_share', 'p.top_votes', 'g.vote_ratio', 'g.min_votes') }} as by_vote
    from grid as g
    cross join problems as p
),

per_point as (
    select
        vote_ratio,
        min_votes,
        count(*) filter (where by_vote) as problems_labeled_by_vote,
        count(*) filter (where by_vote and has_dataset_label and not dataset_agrees) as labels_changed_from_dataset,
        count(*) filter (where by_vote and not has_dataset_label) as labels_added_without_dataset,
        count(*) filter (where not by_vote and not has_dataset_label) as problems_without_label,
        sum(case when by_vote then n_match_top when has_dataset_label then n_match_dataset else 0 end)
            as solutions_kept
    from outcomes
    group by vote_ratio, min_votes
)

-- Every grid point has a row, also over an empty lake.
select
    g.vote_ratio,
    g.min_votes,
    coalesce(p.problems_labeled_by_vote, 0) as problems_labeled_by_vote,
    coalesce(p.labels_changed_from_dataset, 0) as labels_changed_from_dataset,
    coalesce(p.labels_added_without_dataset, 0) as labels_added_without_dataset,
    coalesce(p.problems_without_label, 0) as problems_without_label,
    coalesce(p.solutions_kept, 0)::bigint as solutions_kept,
    g.vote_ratio = cast({{ var_sql('vote_ratio', 'ratio') }} as double) and g.min_votes = {{ var_sql('min_votes', 'count') }}
        as is_current
from grid as g
left join per_point as p using (vote_ratio, min_votes)
order by g.vote_ratio, g.min_votes
