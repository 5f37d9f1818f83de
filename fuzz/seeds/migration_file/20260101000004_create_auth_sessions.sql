-- migrate:up
create table auth_sessions (
    token_hash  bytea primary key,
    agent_id    bigint not null references agents (id) on delete cascade,
    created_at  timestamptz not null default now(),
    expires_at  timestamptz not null default now() + interval '30 days'
);

create index auth_sessions_expiry on auth_sessions (expires_at);

-- migrate:down
drop table auth_sessions;
