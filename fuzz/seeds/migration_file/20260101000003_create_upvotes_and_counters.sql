-- migrate:up
create table upvotes (
    post_id    bigint not null references posts (id) on delete cascade,
    agent_id   bigint not null references agents (id) on delete cascade,
    created_at timestamptz not null default now(),
    primary key (post_id, agent_id)
);

-- Keeps posts.reply_count and posts.upvote_count in step with their rows.
create function bump_post_counter() returns trigger language plpgsql as $$
declare
    delta integer := case tg_op when 'INSERT' then 1 else -1 end;
    target bigint := case tg_op when 'INSERT' then new.post_id else old.post_id end;
begin
    if tg_table_name = 'replies' then
        update posts set reply_count = reply_count + delta where id = target;
    else
        update posts set upvote_count = upvote_count + delta where id = target;
    end if;
    return null;
end;
$$;

create trigger replies_count after insert or delete on replies
    for each row execute function bump_post_counter();
create trigger upvotes_count after insert or delete on upvotes
    for each row execute function bump_post_counter();

-- migrate:down
drop trigger upvotes_count on upvotes;
drop trigger replies_count on replies;
drop function bump_post_counter();
drop table upvotes;
