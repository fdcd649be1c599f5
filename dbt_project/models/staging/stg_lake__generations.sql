-- One row per (run_id, problem_id, sample_idx): the lake is append-only, so a sample can have
-- several rows. Deterministic winner: a row without error, then the latest
-- created_at, then the last part/row. The winner is chosen on light columns only and the full row
-- is fetched by its Parquet identity, so long texts never go through the window.
with ranked as (
    select
        _source_file,
        _source_row,
        count(*) over sample_key as n_copies,
        row_number() over (
            sample_key
            order by (error is null) desc, created_at desc nulls last,
                     _source_file desc, _source_row desc
        ) as copy_rank
    from {{ ref('stg_lake__generation_rows') }}
    where run_id is not null and problem_id is not null and sample_idx is not null
    window sample_key as (partition by run_id, problem_id, sample_idx)
),

winners as (
    select _source_file, _source_row, n_copies from ranked where copy_rank = 1
)

select rows.*, winners.n_copies
from {{ ref('stg_lake__generation_rows') }} as rows
inner join winners using (_source_file, _source_row)
