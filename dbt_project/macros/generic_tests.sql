{% test unique_combination(model, columns) %}
{#- No two rows share the same values of `columns` (dbt_utils.unique_combination_of_columns). -#}
select {{ columns | join(', ') }}, count(*) as n
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}
