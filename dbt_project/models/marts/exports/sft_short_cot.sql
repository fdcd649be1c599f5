{{ config(materialized='external', location=exports_path('sft_short_cot.parquet'), format='parquet', options={'compression': 'zstd'}) }}
-- The short-CoT stratum of sft_examples as Parquet (readable by datasets.load_dataset("parquet", ...)).
select * from {{ ref('sft_examples') }} where stratum = 'short'
