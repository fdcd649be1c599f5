-- Near-duplicate training problems, across and within sources: one row per problem that
-- duplicates another, with the problem of its cluster that is kept. Benchmark problems are left
-- to contamination.
-- Two problems are duplicates when they have the same numbers (number_key: a problem that
-- differs only in a number is another problem) and the Jaccard similarity of their token
-- 3-gram sets (warehouse/dbt_plugin.py problem_similarity; case, spacing, LaTeX spacing and
-- punctuation do not count) is >= var near_duplicate_threshold. Candidates come from MinHash
-- LSH: 32 bands of 4 signature values, each band bucketed together with the number key (recall
-- ~1 at similarity 0.75, ~0.9 at 0.5); the exact similarity then decides.
-- Clusters are the connected components of the duplicate pairs; the kept problem is the first by
-- (has a dataset label, source, row number of the id, problem_id). With var
-- drop_near_duplicates, the other members' solutions leave the SFT selection (int_sft_selection
-- 'near_duplicate').
-- similarity: to the kept problem (below the threshold only for a member linked to it through
-- another); max_similarity: its closest link. match_type against the kept problem: 'exact' (same text), 'normalized' (similarity 1: same
-- text up to case, spacing, LaTeX spacing, punctuation), 'near'.
{%- set threshold = var_sql('near_duplicate_threshold', 'ratio') %}
{%- set bands = 32 %}
{%- set rows_per_band = 4 %}
with problems as (
    select
        p.problem_id,
        p.source,
        p.prompt,
        s.prompt_hash,
        s.minhash,
        s.number_key,
        row_number() over (
            order by p.expected_answer is null, p.source,
                try_cast(split_part(p.problem_id, ':', -1) as bigint) nulls last, p.problem_id
        ) as keep_rank
    from {{ ref('stg_lake__problems') }} as p
    inner join {{ ref('int_problem_signatures') }} as s on s.prompt_hash = md5_number(p.prompt)
    where not p.is_benchmark and s.minhash is not null
),

buckets as (
    select
        problem_id,
        band,
        hash(number_key, band, minhash[band * {{ rows_per_band }} + 1 : (band + 1) * {{ rows_per_band }}]) as bucket
    from problems
    cross join range({{ bands }}) as b(band)
),

candidates as (
    select distinct a.problem_id as problem_a, b.problem_id as problem_b
    from buckets as a
    inner join buckets as b on b.band = a.band and b.bucket = a.bucket and b.problem_id > a.problem_id
),

pairs as (
    select
        c.problem_a,
        c.problem_b,
        case when a.prompt_hash = b.prompt_hash then 1.0 else problem_similarity(a.prompt, b.prompt) end
            as similarity
    from candidates as c
    inner join problems as a on a.problem_id = c.problem_a
    inner join problems as b on b.problem_id = c.problem_b
    where a.number_key = b.number_key
),

links as (
    select problem_a as problem_id, problem_b as other_id, similarity from pairs where similarity >= {{ threshold }}
    union all
    select problem_b, problem_a, similarity from pairs where similarity >= {{ threshold }}
),

-- Every member of each linked problem's cluster (UNION: each (problem, member) once, so cycles end).
reach(problem_id, member_id) as (
    select distinct problem_id, problem_id from links
    union
    select r.problem_id, l.other_id
    from reach as r
    inner join links as l on l.problem_id = r.member_id
),

clusters as (
    select
        r.problem_id,
        arg_min(r.member_id, m.keep_rank) as kept_problem_id,
        count(*) as cluster_size
    from reach as r
    inner join problems as m on m.problem_id = r.member_id
    group by r.problem_id
),

best_links as (
    select problem_id, max(similarity) as max_similarity
    from links
    group by problem_id
),

scored as (
    select
        d.problem_id,
        d.source,
        c.kept_problem_id,
        k.source as kept_source,
        d.prompt = k.prompt as same_text,
        case when d.prompt = k.prompt then 1.0 else problem_similarity(d.prompt, k.prompt) end as similarity,
        b.max_similarity,
        c.cluster_size,
        d.number_key
    from clusters as c
    inner join problems as d on d.problem_id = c.problem_id
    inner join problems as k on k.problem_id = c.kept_problem_id
    inner join best_links as b on b.problem_id = c.problem_id
    where c.problem_id <> c.kept_problem_id
)

select
    problem_id,
    source,
    kept_problem_id,
    kept_source,
    similarity,
    max_similarity,
    case when same_text then 'exact' when similarity = 1.0 then 'normalized' else 'near' end as match_type,
    source <> kept_source as cross_source,
    cluster_size,
    number_key
from scored
