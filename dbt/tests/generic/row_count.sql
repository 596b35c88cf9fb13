{#- Volume of an unpartitioned model: at least min_rows rows. -#}
{% test row_count_at_least(model, min_rows=1) %}

select count(*) as n
from {{ model }}
having count(*) < {{ min_rows }}

{% endtest %}


{#- Reconciliation of an unpartitioned model: exactly as many rows as `compare`. -#}
{% test same_row_count(model, compare) %}

select
    (select count(*) from {{ model }}) as model_rows,
    (select count(*) from {{ compare }}) as compare_rows
where (select count(*) from {{ model }}) <> (select count(*) from {{ compare }})

{% endtest %}
