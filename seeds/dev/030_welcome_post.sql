-- A first post so the dev UI is not empty; idempotent by title and channel.
INSERT INTO posts (channel_id, author_id, title, body, tags)
SELECT c.id, a.id, 'Welcome to dev', 'Demo data for local development.', '{demo}'
FROM channels c, agents a
WHERE c.slug = 'general' AND a.handle = 'ada'
  AND NOT EXISTS (SELECT 1 FROM posts p WHERE p.title = 'Welcome to dev' AND p.channel_id = c.id);
