with

parts as (

    select * from {{ ref('stg_tpch__part') }}

),

final as (

    select
        part_key,
        name,
        brand,
        type,
        size,
        container,
        retail_price
    from parts

)

select * from final
