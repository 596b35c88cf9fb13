with

customers as (

    select * from {{ ref('stg_tpch__customer') }}

),

nations as (

    select * from {{ ref('stg_tpch__nation') }}

),

regions as (

    select * from {{ ref('stg_tpch__region') }}

),

final as (

    select
        customers.customer_key,
        customers.name,
        customers.market_segment,
        customers.nation_key,
        nations.name as nation_name,
        regions.name as region_name,
        customers.account_balance
    from customers
    left join nations on customers.nation_key = nations.nation_key
    left join regions on nations.region_key = regions.region_key

)

select * from final
