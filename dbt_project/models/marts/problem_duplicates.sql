-- Near-duplicate training problems, across and within sources: one row per problem that
-- duplicates another, with the problem of its cluster that is kept. Benchmark problems are left
-- to contamination.
-- Two problems are duplicates when they have the same text, or the same numbers (number_key: a
-- problem that differs only in a number is another problem) and a Jaccard similarity of their
-- token 3-gram sets (warehouse/dbt_plugin.py problem_similarity; case, spacing, LaTeX spacing and
-- punctuation do not count) >= var near_duplicate_threshold. Distinct texts are compared, so
-- many copies of one text cost nothing more: candidates come from MinHash LSH over the texts'
-- signatures (int_problem_signatures), 32 bands of 4 values, each band bucketed together with the
-- number key (recall ~1 at similarity 0.75, 0.87 at 0.5), and the exact similarity decides.
-- Clusters are the connected components of the duplicate pairs; the kept problem is the first by
-- (has a dataset label, source, row number of the id, problem_id). With var
-- drop_near_duplicates, the other members' solutions leave the SFT selection (int_sft_selection
-- 'near_duplicate').
-- similarity: to the kept problem (below the threshold only for a member linked to it through
-- another); max_similarity: its closest duplicate. match_type against the kept problem: 'exact'
-- (same text), 'normalized' (similarity 1: same text up to case, spacing, LaTeX spacing,
-- punctuation), 'near'.
{%- set threshold = var_sql('near_duplicate_threshold', 'ratio') %}
{%- set bands = 32 %}
{%- set rows_per_band = 4 %}
with recursive problems as (
    select
        p.problem_id,
        p.source,
        p.prompt,
        s.prompt_hash,
        row_number() over (
            order by p.expected_answer is null, p.source,
                try_cast(split_part(p.problem_id, ':', -1) as bigint) nulls last, p.problem_id
        ) as keep_rank
    from {{ ref('stg_lake__problems') }} as p
    inner join {{ ref('int_problem_signatures') }} as s on s.prompt_hash = md5_number(p.prompt)
    where not p.is_benchmark and s.minhash is not null
),

texts as (
    select s.prompt_hash, s.minhash, s.number_key, t.prompt
    from (select prompt_hash, any_value(prompt) as prompt from problems group by prompt_hash) as t
    inner join {{ ref('int_problem_signatures') }} as s using (prompt_hash)
),

buckets as (
    select
        prompt_hash,
        band,
        hash(number_key, band, minhash[band * {{ rows_per_band }} + 1 : (band + 1) * {{ rows_per_band }}]) as bucket
    from texts
    cross join range({{ bands }}) as b(band)
),

candidates as (
    select distinct a.prompt_hash as text_a, b.prompt_hash as text_b
    from buckets as a
    inner join buckets as b on b.band = a.band and b.bucket = a.bucket and b.prompt_hash > a.prompt_hash
),

text_links as (
    select text_a, text_b, similarity
    from (
        select c.text_a, c.text_b, problem_similarity(a.prompt, b.prompt) as similarity
        from candidates as c
        inner join texts as a on a.prompt_hash = c.text_a
        inner join texts as b on b.prompt_hash = c.text_b
        where a.number_key = b.number_key
    )
    where similarity >= {{ threshold }}
),

links as (
    select text_a as prompt_hash, text_b as other_hash, similarity from text_links
    union all
    select text_b, text_a, similarity from text_links
),

-- Every text of each linked text's cluster (UNION: each (text, member) once, so cycles end).
reach(prompt_hash, member_hash) as (
    select distinct prompt_hash, prompt_hash from links
    union
    select r.prompt_hash, l.other_hash
    from reach as r
    inner join links as l on l.prompt_hash = r.member_hash
),

text_clusters as (
    select prompt_hash, min(member_hash) as cluster_hash
    from reach
    group by prompt_hash
),

members as (
    select
        p.* exclude (prompt),
        coalesce(c.cluster_hash, p.prompt_hash) as cluster_hash,
        count(*) over (partition by p.prompt_hash) as copies
    from problems as p
    left join text_clusters as c using (prompt_hash)
),

clusters as (
    select cluster_hash, arg_min(problem_id, keep_rank) as kept_problem_id, count(*) as cluster_size
    from members
    group by cluster_hash
    having count(*) > 1
),

best_links as (
    select prompt_hash, max(similarity) as max_similarity
    from links
    group by prompt_hash
),

duplicates as (
    select
        m.problem_id,
        m.source,
        m.prompt_hash,
        m.copies,
        c.kept_problem_id,
        k.source as kept_source,
        k.prompt_hash as kept_hash,
        c.cluster_size
    from members as m
    inner join clusters as c using (cluster_hash)
    inner join members as k on k.problem_id = c.kept_problem_id
    where m.problem_id <> c.kept_problem_id
),

pair_similarity as (
    select d.prompt_hash, d.kept_hash, problem_similarity(t.prompt, kt.prompt) as similarity
    from (select distinct prompt_hash, kept_hash from duplicates where prompt_hash <> kept_hash) as d
    inner join texts as t on t.prompt_hash = d.prompt_hash
    inner join texts as kt on kt.prompt_hash = d.kept_hash
)

select
    d.problem_id,
    d.source,
    d.kept_problem_id,
    d.kept_source,
    coalesce(s.similarity, 1.0) as similarity,
    case when d.copies > 1 then 1.0 else b.max_similarity end as max_similarity,
    case when d.prompt_hash = d.kept_hash then 'exact' when s.similarity = 1.0 then 'normalized' else 'near' end
        as match_type,
    d.source <> d.kept_source as cross_source,
    d.cluster_size
from duplicates as d
left join pair_similarity as s on s.prompt_hash = d.prompt_hash and s.kept_hash = d.kept_hash
left join best_links as b on b.prompt_hash = d.prompt_hash
