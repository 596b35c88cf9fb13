{#-
    The run's partition window as a SQL predicate on `column`: column >= start and column < end
    (half-open, so adjacent windows never overlap). Without the window vars it is `true`: the
    whole history.
-#}
{% macro in_partition_window(column) -%}
    {%- if var('window_start', none) is not none and var('window_end', none) is not none -%}
        {{ column }} >= date '{{ var("window_start") }}' and {{ column }} < date '{{ var("window_end") }}'
    {%- else -%}
        true
    {%- endif -%}
{%- endmacro %}
