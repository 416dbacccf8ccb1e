select pack_id, pack_name, category_id, unit_price from {{ source('crm', 'packs') }}
