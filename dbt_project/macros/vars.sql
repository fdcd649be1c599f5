{#- Every var reaches SQL through var_sql: checked against its kind, rendered as a SQL literal.
    `reasonlite curate` checks the same kinds in Python first (warehouse/curate.py VAR_KINDS, with
    "did you mean" for typos); these checks also guard a bare `dbt build --vars ...`.
    Kinds: boolean, number, ratio (0 < x <= 1), count (integer >= 1), count_or_null, text, and the
    lists texts, ratios, counts; a mode out of a few (stratify_by, vote_scope) goes through
    checked_choice. -#}

{% macro var_sql(name, kind) -%}
  {{- return(sql_literal(checked_var(name, kind))) -}}
{%- endmacro %}


{% macro checked_var(name, kind) -%}
  {#- The var's value, or a compile error naming the var when it is not of `kind`. -#}
  {%- set value = var(name) -%}
  {%- set item_kind = {'texts': 'text', 'ratios': 'ratio', 'counts': 'count'}.get(kind) -%}
  {%- if item_kind -%}
    {%- if value is string or value is mapping or value is not iterable -%}
      {{ exceptions.raise_compiler_error("var " ~ name ~ " must be a list (" ~ kind ~ "), got " ~ value) }}
    {%- endif -%}
    {%- for item in value -%}
      {%- if not var_is_kind(item, item_kind) -%}
        {{ exceptions.raise_compiler_error("var " ~ name ~ ": " ~ item ~ " is not a " ~ item_kind) }}
      {%- endif -%}
    {%- endfor -%}
  {%- elif not var_is_kind(value, kind) -%}
    {{ exceptions.raise_compiler_error("var " ~ name ~ " must be a " ~ kind ~ ", got " ~ value) }}
  {%- endif -%}
  {{- return(value) -}}
{%- endmacro %}


{% macro checked_choice(name, choices) -%}
  {#- A var that names one of a few modes (stratify_by, vote_scope, ...): its value, or a compile
      error listing the choices. -#}
  {%- set value = var(name) -%}
  {%- if value is not string or value not in choices -%}
    {{ exceptions.raise_compiler_error("var " ~ name ~ " must be one of " ~ choices | join(", ") ~ ", got " ~ value) }}
  {%- endif -%}
  {{- return(value) -}}
{%- endmacro %}


{% macro var_is_kind(value, kind) -%}
  {%- set is_bool = value is sameas true or value is sameas false -%}
  {%- set is_number = value is number and not is_bool -%}
  {%- set is_integer = is_number and value is integer -%}
  {%- if kind == 'boolean' -%}{{ return(is_bool) }}
  {%- elif kind == 'number' -%}{{ return(is_number) }}
  {%- elif kind == 'ratio' -%}{{ return(is_number and value > 0 and value <= 1) }}
  {%- elif kind == 'count' -%}{{ return(is_integer and value >= 1) }}
  {%- elif kind == 'count_or_null' -%}{{ return(value is none or (is_integer and value >= 1)) }}
  {%- elif kind == 'text' -%}{{ return(value is string) }}
  {%- else -%}{{ exceptions.raise_compiler_error("unknown var kind " ~ kind) }}
  {%- endif -%}
{%- endmacro %}


{% macro sql_literal(value) -%}
  {#- A checked Jinja value as SQL: text quoted with '' escaping, a list as a DuckDB list literal
      (test membership with list_contains; rows with unnest). -#}
  {%- if value is none -%}null
  {%- elif value is sameas true -%}true
  {%- elif value is sameas false -%}false
  {%- elif value is number -%}{{ value }}
  {%- elif value is string -%}'{{ value | replace("'", "''") }}'
  {%- else -%}[{%- for item in value -%}{{ sql_literal(item) }}{{ ", " if not loop.last }}{%- endfor -%}]
  {%- endif -%}
{%- endmacro %}
