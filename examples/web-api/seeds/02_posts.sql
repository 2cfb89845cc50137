INSERT INTO posts (author_id, title, body, published_at)
SELECT u.id, 'Hello from ' || u.name, 'A first post.', now()
FROM users u
WHERE NOT EXISTS (SELECT 1 FROM posts p WHERE p.author_id = u.id);
