"""Source readers: where a raw dataset's rows come from (landing files, Postgres, HTTP APIs)."""
