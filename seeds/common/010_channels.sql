-- Channels every env has (the plan's "channels (seeded)"); idempotent by the unique slug.
INSERT INTO channels (slug, title) VALUES
    ('general', 'General'),
    ('announcements', 'Announcements'),
    ('help', 'Help')
ON CONFLICT (slug) DO NOTHING;
