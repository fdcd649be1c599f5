-- Training problems that match a benchmark problem (problems whose source is in var
-- benchmark_sources) after text normalization: the same normalized text ('exact'), or a shared
-- word n-gram of var contamination_ngram words ('ngram'). One row per (problem, benchmark problem);
-- these problems are excluded from sft_examples.
{%- set n = checked_var('contamination_ngram', 'count') %}
with normalized as (
    select
        problem_id,
        source,
        is_benchmark,
        {{ normalize_problem_text('prompt') }} as text
    from {{ ref('stg_lake__problems') }}
),

words as (
    select problem_id, source, is_benchmark, text, string_split(text, ' ') as w
    from normalized
    where text <> ''
),

ngrams as (
    select problem_id, is_benchmark, hash(array_to_string(w[i:i + {{ n - 1 }}], ' ')) as ngram
    from (
        select problem_id, is_benchmark, w, unnest(range(1, len(w) - {{ n - 2 }})) as i
        from words
        where len(w) >= {{ n }}
    )
),

benchmark_ngrams as (
    select distinct problem_id, ngram from ngrams where is_benchmark
),

benchmark_sizes as (
    select problem_id, count(*) as n_ngrams from benchmark_ngrams group by problem_id
),

ngram_hits as (
    select t.problem_id, b.problem_id as benchmark_problem_id, count(distinct t.ngram) as shared_ngrams
    from (select distinct problem_id, ngram from ngrams where not is_benchmark) as t
    inner join benchmark_ngrams as b on b.ngram = t.ngram
    group by all
),

exact_hits as (
    select t.problem_id, b.problem_id as benchmark_problem_id
    from words as t
    inner join words as b on b.text = t.text
    where not t.is_benchmark and b.is_benchmark
),

hits as (
    select
        coalesce(e.problem_id, h.problem_id) as problem_id,
        coalesce(e.benchmark_problem_id, h.benchmark_problem_id) as benchmark_problem_id,
        e.problem_id is not null as exact_match,
        coalesce(h.shared_ngrams, 0) as shared_ngrams
    from exact_hits as e
    full outer join ngram_hits as h
        on h.problem_id = e.problem_id and h.benchmark_problem_id = e.benchmark_problem_id
)

select
    hits.problem_id,
    t.source,
    hits.benchmark_problem_id,
    b.source as benchmark_source,
    case when hits.exact_match then 'exact' else 'ngram' end as match_type,
    hits.shared_ngrams,
    coalesce(hits.shared_ngrams::double / nullif(bs.n_ngrams, 0), case when hits.exact_match then 1.0 end)
        as benchmark_ngram_overlap,
    {{ n }} as ngram_words
from hits
inner join words as t on t.problem_id = hits.problem_id
inner join words as b on b.problem_id = hits.benchmark_problem_id
left join benchmark_sizes as bs on bs.problem_id = hits.benchmark_problem_id
