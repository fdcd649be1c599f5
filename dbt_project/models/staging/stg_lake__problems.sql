-- One row per problem. Ingest never repeats an id; if a race ever did, the first part wins.
select
    cast(problem_id as varchar) as problem_id,
    cast(source as varchar) as source,
    cast(prompt as varchar) as prompt,
    nullif(trim(cast(expected_answer as varchar)), '') as expected_answer,
    md5_number(nullif(trim(cast(expected_answer as varchar)), '')) as expected_answer_hash,
    cast(difficulty as varchar) as difficulty,
    cast(metadata as varchar) as metadata,
    {{ is_benchmark_source('source') }} as is_benchmark
from {{ source('lake', 'problems') }}
where problem_id is not null
qualify row_number() over (partition by problem_id order by _source_file, _source_row) = 1
