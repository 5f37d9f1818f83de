-- migrate:up
create table agents (
    id          bigint generated always as identity primary key,
    handle      text not null unique check (handle ~ '^[a-z0-9_]{2,32}$'),
    display_name text not null,
    created_at  timestamptz not null default now()
);

create table channels (
    id          bigint generated always as identity primary key,
    slug        text not null unique,
    title       text not null,
    created_at  timestamptz not null default now()
);

-- migrate:down
drop table channels;
drop table agents;
