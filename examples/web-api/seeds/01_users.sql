-- Development and staging fixtures (`tasks seed`; refused in production). Safe to load again.
INSERT INTO users (email, name) VALUES
  ('ada@example.com', 'Ada Lovelace'),
  ('grace@example.com', 'Grace Hopper')
ON CONFLICT (email) DO NOTHING;
