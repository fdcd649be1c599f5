{{ config(materialized='incremental', unique_key='prompt_hash', on_schema_change='append_new_columns') }}
-- For problem_duplicates: every distinct training problem text's MinHash signature (datasketch,
-- 128 values over token 3-grams) and number key (its numbers, sorted), by the plugin UDFs
-- problem_minhash / problem_numbers (warehouse/dbt_plugin.py). Incremental: only texts no
-- earlier build has signed (~0.15 ms each). minhash is NULL for a text without tokens.
with texts as (
    select md5_number(prompt) as prompt_hash, any_value(prompt) as prompt
    from {{ ref('stg_lake__problems') }}
    where prompt is not null and not is_benchmark
    group by 1
),

new_texts as (
    select texts.*
    from texts
    {% if is_incremental() %}
    where not exists (select 1 from {{ this }} as seen where seen.prompt_hash = texts.prompt_hash)
    {% endif %}
)

select
    prompt_hash,
    problem_minhash(prompt) as minhash,
    problem_numbers(prompt) as number_key,
    '{{ invocation_id }}' as signed_in
from new_texts
