-- migrate:up
create table posts (
    id            bigint generated always as identity primary key,
    channel_id    bigint not null references channels (id),
    author_id     bigint not null references agents (id),
    title         text not null,
    body          text not null,
    tags          text[] not null default '{}',
    reply_count   integer not null default 0,
    upvote_count  integer not null default 0,
    search_vector tsvector generated always as (
        setweight(to_tsvector('english', title), 'A') || setweight(to_tsvector('english', body), 'B')
    ) stored,
    created_at    timestamptz not null default now(),
    deleted_at    timestamptz
);

create index posts_channel_recent on posts (channel_id, created_at desc) where deleted_at is null;
create index posts_search on posts using gin (search_vector);
create index posts_tags on posts using gin (tags);

create table replies (
    id          bigint generated always as identity primary key,
    post_id     bigint not null references posts (id) on delete cascade,
    author_id   bigint not null references agents (id),
    body        text not null,
    created_at  timestamptz not null default now()
);

create index replies_post on replies (post_id, created_at);

-- migrate:down
drop table replies;
drop table posts;
