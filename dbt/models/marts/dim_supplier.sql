with

suppliers as (

    select * from {{ ref('stg_tpch__supplier') }}

),

nations as (

    select * from {{ ref('stg_tpch__nation') }}

),

regions as (

    select * from {{ ref('stg_tpch__region') }}

),

final as (

    select
        suppliers.supplier_key,
        suppliers.name,
        suppliers.nation_key,
        nations.name as nation_name,
        regions.name as region_name
    from suppliers
    left join nations on suppliers.nation_key = nations.nation_key
    left join regions on nations.region_key = regions.region_key

)

select * from final
