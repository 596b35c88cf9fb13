with

source as (

    select * from {{ source('tpch', 'supplier') }}

),

deduplicated as (

    select * from source
    qualify row_number() over (partition by s_suppkey order by _loaded_at desc) = 1

),

renamed as (

    select
        cast(s_suppkey as bigint) as supplier_key,
        cast(s_name as varchar) as name,
        cast(s_address as varchar) as address,
        cast(s_nationkey as bigint) as nation_key,
        cast(s_phone as varchar) as phone,
        cast(s_acctbal as decimal(15, 2)) as account_balance,
        cast(s_comment as varchar) as comment
    from deduplicated

)

select * from renamed
