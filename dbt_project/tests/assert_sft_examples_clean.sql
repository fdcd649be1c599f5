-- No SFT example comes from a contaminated problem or a benchmark problem.
select s.run_id, s.problem_id, s.sample_idx, 'contaminated' as why
from {{ ref('sft_examples') }} as s
where s.problem_id in (select problem_id from {{ ref('contamination') }})
union all
select s.run_id, s.problem_id, s.sample_idx, 'benchmark problem'
from {{ ref('sft_examples') }} as s
where {{ is_benchmark_source('s.source') }}
