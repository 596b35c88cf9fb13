{#-
    Reconciliation: the model has as many rows per day of the run's window as `compare` (a source
    or model) has per day of `compare_column`. Without the window vars, every day is compared.
-#}
{% test row_count_matches(model, column_name, compare, compare_column) %}

with

model_rows as (

    select {{ column_name }} as day, count(*) as n
    from {{ model }}
    where {{ in_partition_window(column_name) }}
    group by 1

),

compare_rows as (

    select {{ compare_column }} as day, count(*) as n
    from {{ compare }}
    where {{ in_partition_window(compare_column) }}
    group by 1

)

select
    coalesce(model_rows.day, compare_rows.day) as day,
    model_rows.n as model_rows,
    compare_rows.n as compare_rows
from model_rows
full outer join compare_rows on model_rows.day = compare_rows.day
where model_rows.n is distinct from compare_rows.n

{% endtest %}
