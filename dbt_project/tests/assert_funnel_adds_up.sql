-- Every sample lands in exactly one funnel bucket, and every lake row is a sample or a duplicate.
with f as (
    select
        run_id,
        stratum,
        sum(n_rows) filter (where stage = 'lake_rows') as lake_rows,
        sum(n_rows) filter (where stage = 'duplicate_rows') as duplicate_rows,
        sum(n_rows) filter (where stage = 'samples') as samples,
        sum(n_rows) filter (where stage_kind = 'rejected') as rejected,
        sum(n_rows) filter (where stage = 'kept') as kept,
        sum(n_rows) filter (where stage_kind = 'sft_dropped') as sft_dropped,
        sum(n_rows) filter (where stage = 'sft_examples') as sft_examples
    from {{ ref('curation_funnel') }}
    group by run_id, stratum
)
select *
from f
where lake_rows <> samples + duplicate_rows
   or samples <> rejected + kept
   or kept <> sft_dropped + sft_examples
