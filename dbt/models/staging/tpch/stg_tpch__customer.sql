with

source as (

    select * from {{ source('tpch', 'customer') }}

),

deduplicated as (

    select * from source
    qualify row_number() over (partition by c_custkey order by _loaded_at desc) = 1

),

renamed as (

    select
        cast(c_custkey as bigint) as customer_key,
        cast(c_name as varchar) as name,
        cast(c_address as varchar) as address,
        cast(c_nationkey as bigint) as nation_key,
        cast(c_phone as varchar) as phone,
        cast(c_acctbal as decimal(15, 2)) as account_balance,
        cast(c_mktsegment as varchar) as market_segment,
        cast(c_comment as varchar) as comment
    from deduplicated

)

select * from renamed
