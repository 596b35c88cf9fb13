{#-
    Referential integrity within the run's partition window, on both sides.

    Every non-null `column_name` of the model's rows in the window (by `window_column`) exists in
    `field` of `to`'s rows in the same window (by `to_window_column`). Use it where the parent is
    partitioned the same way as the child (line items and their orders share the order date), so
    that a window is judged on its own: days that another, failed window left half-built are not
    this run's business. A parent that is not partitioned takes dbt's own `relationships` test.
    Without the window vars, the whole of both tables.
-#}
{% test relationships_in_window(model, column_name, to, field, window_column, to_window_column) %}

with

child as (

    select {{ column_name }} as key
    from {{ model }}
    where {{ column_name }} is not null and {{ in_partition_window(window_column) }}

),

parent as (

    select {{ field }} as key
    from {{ to }}
    where {{ in_partition_window(to_window_column) }}

)

select child.key
from child
left join parent on child.key = parent.key
where parent.key is null

{% endtest %}
