{#-
    The run's partition window as a SQL predicate on `column`: column >= start and column < end
    (half-open local dates, so adjacent windows never overlap), except the days in `window_skip`
    (the quality gate held them back: their upstream is incomplete or failed a blocking check; they
    are neither deleted nor rebuilt). Without the window vars it is `true`: the whole history.
-#}
{% macro in_partition_window(column) -%}
    {%- if var('window_start', none) is not none and var('window_end', none) is not none -%}
        {{ column }} >= date '{{ var("window_start") }}' and {{ column }} < date '{{ var("window_end") }}'
        {{- skipped_days(column) }}
    {%- else -%}
        true
    {%- endif -%}
{%- endmacro %}

{#- `and column <> date 'D'` for each day D of `window_skip`. -#}
{% macro skipped_days(column) -%}
    {%- for day in var('window_skip', []) %} and {{ column }} <> date '{{ day }}'{% endfor -%}
{%- endmacro %}
