-- keep => consistent with the label and well-formed (finished, reasoning + final + boxed answer;
-- reasoning and box only where vars require_reasoning / require_boxed ask for them).
select *
from {{ ref('judged_generations') }}
where keep
  and not (
      is_consistent and label is not null and answer is not null
      and (has_reasoning or not {{ var_sql('require_reasoning', 'boolean') }}) and has_final
      and (has_boxed or not {{ var_sql('require_boxed', 'boolean') }}) and has_completion
      and not is_truncated and not has_error and problem_known
  )
