-- label_source = 'vote' => top_share >= vote_ratio and top_votes >= min_votes.
select *
from {{ ref('pseudo_labels') }}
where label_source = 'vote'
  and not (top_share >= cast({{ var_sql('vote_ratio', 'ratio') }} as double) and top_votes >= {{ var_sql('min_votes', 'count') }})
