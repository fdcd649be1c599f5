{#- The curation rules, each written once and used by the marts, the sweep and the unit tests. -#}

{% macro vote_passes(share, votes, ratio=none, min_votes=none) -%}
  {#- Upstream ReasonLite: the top answer becomes the label when its share of the votes reaches
      vote_ratio and it has at least min_votes votes. -#}
  {%- set ratio = var_sql('vote_ratio', 'ratio') if ratio is none else ratio -%}
  {%- set min_votes = var_sql('min_votes', 'count') if min_votes is none else min_votes -%}
  coalesce(cast({{ share }} as double) >= cast({{ ratio }} as double) and ({{ votes }}) >= ({{ min_votes }}), false)
{%- endmacro %}


{% macro stratum(reasoning_level, completion_tokens) -%}
  {#- short | long. By reasoning level (upstream: medium -> short CoT, high -> long CoT), or by
      completion length; a sample without a level falls back to its length. -#}
  {%- set by = checked_choice('stratify_by', ['reasoning_level', 'tokens']) -%}
  {%- set by_tokens -%}
    case when coalesce({{ completion_tokens }}, 0) >= {{ var_sql('long_cot_min_tokens', 'count') }} then 'long' else 'short' end
  {%- endset -%}
  {%- if by == 'tokens' -%}
    {{ by_tokens }}
  {%- else -%}
    case
      when {{ reasoning_level }} is null then {{ by_tokens }}
      when list_contains({{ sql_literal(checked_var('long_reasoning_levels', 'texts') | map('lower') | list) }}, lower({{ reasoning_level }})) then 'long'
      else 'short'
    end
  {%- endif -%}
{%- endmacro %}


{% macro is_voting_run(run_id, purpose) -%}
  {#- vote_runs = [] means every teacher run of the problem votes. -#}
  {%- if checked_var('vote_runs', 'texts') | length == 0 -%}
    coalesce({{ purpose }} = 'teacher', false)
  {%- else -%}
    coalesce(list_contains({{ var_sql('vote_runs', 'texts') }}, {{ run_id }}), false)
  {%- endif -%}
{%- endmacro %}


{% macro vote_run_id(run_id) -%}
  {#- Which vote a sample of run `run_id` belongs to (column vote_run_id of the tallies, votes and
      pseudo_labels). var vote_scope: 'pooled' (ours) -- one vote per problem over every voting
      run, vote_run_id NULL; 'per_run' (upstream: each run, one reasoning level, votes and is
      judged on its own) -- one vote per problem and run, vote_run_id = the run. Join on it with
      `is not distinct from`. -#}
  {%- if votes_per_run() -%}
    {{ run_id }}
  {%- else -%}
    cast(null as varchar)
  {%- endif -%}
{%- endmacro %}


{% macro votes_per_run() -%}
  {{- return(checked_choice('vote_scope', ['pooled', 'per_run']) == 'per_run') -}}
{%- endmacro %}


{% macro vote_counts_every_sample() -%}
  {#- var vote_denominator: 'answered' (ours) -- a vote's share is top votes / the samples that
      finished (not truncated, no error) with an answer, and only those vote; 'all' (upstream, the
      LLM tallied every sample's last box) -- share = top votes / every sample of the vote,
      truncated and errored ones included, and every sample with an answer votes. -#}
  {{- return(checked_choice('vote_denominator', ['answered', 'all']) == 'all') -}}
{%- endmacro %}


{% macro is_vote(answer_key, has_error, is_truncated) -%}
  {#- Does a sample of a voting run cast a vote (see vote_counts_every_sample)? -#}
  {%- if vote_counts_every_sample() -%}
    {{ answer_key }} is not null
  {%- else -%}
    {{ answer_key }} is not null and not {{ has_error }} and not {{ is_truncated }}
  {%- endif -%}
{%- endmacro %}


{% macro is_curated_run(purpose) -%}
  coalesce(list_contains({{ var_sql('curation_purposes', 'texts') }}, {{ purpose }}), false)
{%- endmacro %}


{% macro is_benchmark_source(source) -%}
  coalesce(list_contains({{ var_sql('benchmark_sources', 'texts') }}, {{ source }}), false)
{%- endmacro %}


{% macro answer_span(final) -%}
  {#- What the grader's extract_answer reads: the final text from its first \boxed (or \fbox) on,
      or the whole final text when it has no box. Cut in SQL so that Python sees short spans,
      which repeat across samples and runs and are graded once each (the grader costs ~30-80 us
      per call). The grader takes the last box (joining adjacent ones), so for any sample with a
      usable box this equals extracting from the whole text; only a degenerate box (empty or
      unbalanced) can differ, because the grader's fallbacks ("the answer is ...", a bare
      answer) then see the span instead of the whole text. -#}
  coalesce(
    nullif(regexp_extract({{ final }}, '(?s)(\\(?:boxed|fbox).*)$', 1), ''),
    {{ final }}
  )
{%- endmacro %}


{% macro normalize_problem_text(text) -%}
  {#- For contamination checks: case, LaTeX markup, punctuation and spacing do not matter. -#}
  trim(regexp_replace(
    regexp_replace(lower(coalesce({{ text }}, '')), '\\(?:left|right|displaystyle|dfrac|tfrac|frac|text|mathrm|cdot|times|quad)\b', ' ', 'g'),
    '[^a-z0-9]+', ' ', 'g'))
{%- endmacro %}


{% macro answers_match(gold_key, pred_key, equivalence) -%}
  {#- Is the answer with pred_key correct for the one with gold_key? Equal canonical keys, else
      the grader's answers_equal verdict stored in int_answer_equivalence (`equivalence` is that
      row, joined on the pair). NULL when either side is missing. -#}
  case
    when {{ gold_key }} is null or {{ pred_key }} is null then null
    when {{ gold_key }} = {{ pred_key }} then true
    else coalesce({{ equivalence }}.is_equal, false)
  end
{%- endmacro %}


{% macro key_is_fallback(key) -%}
  {#- Whether a canonical key is the grader's normalized-string fallback (see evaluation/grading.py). -#}
  is_fallback_key({{ key }})
{%- endmacro %}


{% macro reject_reasons() -%}
  {#- judged_generations.reject_reason values, in the order the rules apply. -#}
  {{ return(['unknown_problem', 'error', 'null_completion', 'truncated', 'no_reasoning', 'no_final',
             'no_boxed', 'no_answer', 'no_label', 'inconsistent']) }}
{%- endmacro %}


{% macro sft_drop_reasons() -%}
  {{ return(['benchmark_problem', 'contaminated', 'near_duplicate', 'duplicate_text', 'capped']) }}
{%- endmacro %}


{% macro user_turn(rendered_prompt) -%}
  {#- The (first) user message of a rendered chat prompt, without system/developer wrapper:
      gpt-oss Harmony, ChatML (Qwen, SmolLM) or Llama 3 headers. NULL for anything else.
      Plain string splits, no regex: this runs on every exported example. -#}
  nullif(trim(case
    when {{ rendered_prompt }} is null then null
    when contains({{ rendered_prompt }}, '<|start|>user<|message|>')
      then split_part(split_part({{ rendered_prompt }}, '<|start|>user<|message|>', 2), '<|end|>', 1)
    when contains({{ rendered_prompt }}, '<|im_start|>user' || chr(10))
      then split_part(split_part({{ rendered_prompt }}, '<|im_start|>user' || chr(10), 2), '<|im_end|>', 1)
    when contains({{ rendered_prompt }}, '<|start_header_id|>user<|end_header_id|>')
      then split_part(split_part({{ rendered_prompt }}, '<|start_header_id|>user<|end_header_id|>', 2), '<|eot_id|>', 1)
  end, ' ' || chr(9) || chr(10) || chr(13)), '')
{%- endmacro %}
