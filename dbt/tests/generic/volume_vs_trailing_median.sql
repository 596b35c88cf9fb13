{#-
    Volume per day of the run's window: fails for a day with 0 rows where the trailing median was
    above 0, or a day more than max_change_pct percent away from the median of the trailing_days
    before it (days without rows count as 0).
-#}
{% test volume_vs_trailing_median(model, column_name, trailing_days=7, max_change_pct=200) %}

with

bounds as (

    select
        {% if var('window_start', none) %} date '{{ var("window_start") }}'
        {% else %} (select min({{ column_name }}) from {{ model }}) {% endif %} as window_start,
        {% if var('window_end', none) %} date '{{ var("window_end") }}'
        {% else %} (select max({{ column_name }}) + 1 from {{ model }}) {% endif %} as window_end

),

days as (

    select cast(unnest(generate_series(
        window_start - {{ trailing_days }}, window_end - 1, interval 1 day
    )) as date) as day
    from bounds

),

counts as (

    select {{ column_name }} as day, count(*) as n
    from {{ model }}, bounds
    where {{ column_name }} >= window_start - {{ trailing_days }} and {{ column_name }} < window_end
    group by 1

),

filled as (

    select days.day, coalesce(counts.n, 0) as n
    from days left join counts on days.day = counts.day

),

judged as (

    select
        day,
        n,
        median(n) over (order by day rows between {{ trailing_days }} preceding and 1 preceding)
            as trailing_median
    from filled

)

select judged.*
from judged, bounds
where judged.day >= bounds.window_start
    and judged.trailing_median > 0
    and (judged.n = 0 or abs(judged.n - judged.trailing_median) / judged.trailing_median * 100 > {{ max_change_pct }})

{% endtest %}
