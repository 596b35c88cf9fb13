{#-
    delete+insert by partition window.

    A model configured with `window_column` and no `unique_key` replaces exactly the rows of the
    run's window: `delete from target where <window_column in window>` then `insert`. This is
    the half-open-interval form of delete+insert: a partition that became empty at the source
    is emptied in the model too, which a key-based delete cannot do. Any other model falls back
    to dbt's standard delete+insert.
-#}
{% macro duckdb__get_delete_insert_merge_sql(
    target, source, unique_key, dest_columns, incremental_predicates
) -%}
    {%- set window_column = config.get('window_column') -%}
    {%- if window_column and not unique_key -%}
        {%- set dest_cols_csv = get_quoted_csv(dest_columns | map(attribute="name")) -%}
        delete from {{ target }}
        where {{ in_partition_window(adapter.quote(window_column)) }};

        insert into {{ target }} ({{ dest_cols_csv }})
        (
            select {{ dest_cols_csv }}
            from {{ source }}
        )
    {%- else -%}
        {{ dbt.default__get_delete_insert_merge_sql(
            target, source, unique_key, dest_columns, incremental_predicates
        ) }}
    {%- endif -%}
{%- endmacro %}
