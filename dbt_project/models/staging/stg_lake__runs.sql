-- One row per generation run manifest.
select
    cast(run_id as varchar) as run_id,
    lower(cast(purpose as varchar)) as purpose,
    cast(model as varchar) as model,
    cast(backend as varchar) as backend,
    lower(cast(reasoning_level as varchar)) as reasoning_level,
    cast(n_samples as integer) as n_samples,
    cast(temperature as float) as temperature,
    cast(top_p as float) as top_p,
    cast(max_tokens as integer) as max_tokens,
    cast(prompt_template as varchar) as prompt_template,
    cast(problem_selection as varchar) as problem_selection,
    cast(status as varchar) as status,
    cast(code_version as varchar) as code_version,
    try_cast(created_at as timestamptz) as created_at,
    try_cast(updated_at as timestamptz) as updated_at,
    try_cast(finished_at as timestamptz) as finished_at
from {{ source('lake', 'runs') }}
where run_id is not null
qualify row_number() over (partition by run_id order by updated_at desc nulls last) = 1
