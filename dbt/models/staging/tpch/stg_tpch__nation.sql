with

source as (

    select * from {{ source('tpch', 'nation') }}

),

deduplicated as (

    select * from source
    qualify row_number() over (partition by n_nationkey order by _loaded_at desc) = 1

),

renamed as (

    select
        cast(n_nationkey as bigint) as nation_key,
        cast(n_name as varchar) as name,
        cast(n_regionkey as bigint) as region_key,
        cast(n_comment as varchar) as comment
    from deduplicated

)

select * from renamed
