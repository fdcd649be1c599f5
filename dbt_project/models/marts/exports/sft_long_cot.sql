{{ config(materialized='external', location=exports_path('sft_long_cot.parquet'), format='parquet', options={'compression': 'zstd'}) }}
-- The long-CoT stratum of sft_examples as Parquet (readable by datasets.load_dataset("parquet", ...)).
select * from {{ ref('sft_examples') }} where stratum = 'long'
