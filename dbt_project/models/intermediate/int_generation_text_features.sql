{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    post_hook="delete from {{ this }} where _source_file not in (select distinct _source_file from {{ source('lake', 'generations') }})"
) }}
-- What int_samples needs from the long texts (completion, reasoning, final), one row per physical
-- lake row. These columns are most of the lake's bytes (thousands of tokens per solution), so
-- they are read once per lake part: an incremental build reads the parts this table has no row
-- of yet (listed at compile time, read by name) and the post_hook drops the rows of parts that
-- left the lake (quarantined, a removed run). Parts never change once written, so a row stays
-- right until the definitions below change: then `reasonlite curate --full-refresh`.
{%- set lake_generations = source('lake', 'generations') %}
{%- set new_parts = lake_files_not_in(lake_generations, this) if is_incremental() else none %}

with texts as (
{%- if new_parts is none %}
    select _source_file, _source_row, completion, reasoning, "final"
    from {{ lake_generations }}
{%- elif new_parts | length > 0 %}
    -- {{ new_parts | length }} new part(s)
    select filename as _source_file, file_row_number as _source_row, completion, reasoning, "final"
    from {{ read_lake_parts(new_parts) }}
{%- else %}
    -- no new part
    select null as _source_file, null as _source_row, null as completion, null as reasoning, null as "final"
    where false
{%- endif %}
),

typed as (
    -- The types of stg_lake__generation_rows, so that the hash below equals one over its columns.
    select
        cast(_source_file as varchar) as _source_file,
        cast(_source_row as bigint) as _source_row,
        cast(completion as varchar) as completion,
        cast(reasoning as varchar) as reasoning,
        cast("final" as varchar) as final
    from texts
),

features as (
    select
        _source_file,
        _source_row,
        coalesce(length(completion) > 0, false) as has_completion,
        coalesce(regexp_matches(reasoning, '\S'), false) as has_reasoning,
        coalesce(regexp_matches(final, '\S'), false) as has_final,
        coalesce(contains(final, '\boxed') or contains(final, '\fbox'), false) as has_boxed,
        {{ answer_span('final') }} as answer_span,
        -- Same problem, same text = same example (64-bit hash, compared within one problem only).
        hash(reasoning, final) as content_hash
    from typed
)

select
    *,
    md5_number(answer_span) as answer_span_hash,
    '{{ invocation_id }}' as features_read_in
from features
