{{ config(materialized='view') }}
-- The SFT data: kept, deduplicated, decontaminated (and optionally capped) teacher samples as
-- chat messages. A view: the long texts stay in the lake and are read once per export (the
-- sft_short_cot / sft_long_cot Parquet files), never copied into the database.
-- The first twelve columns are the contract with training (`reasonlite export`, training/) and
-- must not change; more columns go after them.
-- user: the problem as the teacher saw it (the user turn of the rendered prompt, without system /
-- developer wrapper; the problem text when the prompt was not recorded);
-- assistant: "<think>\n{reasoning}\n</think>\n\n{final}".
with selected as (
    select j.*
    from {{ ref('judged_generations') }} as j
    inner join {{ ref('int_sft_selection') }} as s using (run_id, problem_id, sample_idx)
    where s.sft_drop_reason is null
),

texts as (
    -- Long texts are fetched here only, by Parquet identity, for the selected rows. The lineage
    -- columns come from the lake side, so a filter on them (the incremental export's list of lake
    -- files) reaches the Parquet scan and DuckDB opens only those files.
    select
        s.* exclude (_source_file, _source_row),
        g._source_file,
        g._source_row,
        g.prompt as rendered_prompt,
        g.reasoning,
        g.final
    from selected as s
    inner join {{ ref('stg_lake__generation_rows') }} as g using (_source_file, _source_row)
),

with_user as (
    select
        t.*,
        p.source,
        coalesce({{ user_turn('t.rendered_prompt') }}, p.prompt) as user_content
    from texts as t
    inner join {{ ref('stg_lake__problems') }} as p using (problem_id)
)

select
    problem_id::varchar as problem_id,
    source::varchar as source,
    run_id::varchar as run_id,
    sample_idx::integer as sample_idx,
    model::varchar as teacher_model,
    reasoning_level::varchar as reasoning_level,
    stratum::varchar as stratum,
    label::varchar as label,
    label_source::varchar as label_source,
    prompt_tokens::integer as prompt_tokens,
    completion_tokens::integer as completion_tokens,
    [
        {'role': 'user', 'content': user_content},
        {'role': 'assistant', 'content': concat('<think>', chr(10), reasoning, chr(10), '</think>', chr(10), chr(10), final)}
    ]::struct(role varchar, content varchar)[] as messages,
    -- beyond the contract
    answer,
    answer_key,
    -- lineage (which lake row holds the texts), for the incremental export; not exported
    _source_file,
    _source_row
from with_user
