-- Applied once by `tasks migrate`, in one transaction, then recorded in schema_migrations. Never edit an applied file:
-- add the next number instead.
CREATE TABLE users (
  id bigserial PRIMARY KEY,
  email text NOT NULL UNIQUE,
  name text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
