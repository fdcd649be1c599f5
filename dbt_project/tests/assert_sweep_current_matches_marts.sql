-- The sweep's row for the current vars predicts exactly what the marts hold.
with current_point as (
    select * from {{ ref('threshold_sweep') }} where is_current
),
actual as (
    select
        (select count(*) from {{ ref('pseudo_labels') }} where label_source = 'vote') as problems_labeled_by_vote,
        (select count(*) from {{ ref('judged_generations') }} where keep) as solutions_kept
)
select *
from actual
left join current_point on true
where current_point.vote_ratio is null
   or current_point.problems_labeled_by_vote <> actual.problems_labeled_by_vote
   or current_point.solutions_kept <> actual.solutions_kept
