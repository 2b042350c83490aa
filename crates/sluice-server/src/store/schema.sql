create table if not exists events (
    seq integer primary key,
    source text not null,
    message_id text not null,
    received_at text not null,
    body text not null,
    decisions text not null,
    warnings text
);
create index if not exists events_by_source on events (source, seq);
create table if not exists dedupe (
    source text not null,
    message_id text not null,
    primary key (source, message_id)
) without rowid;
create table if not exists invalid (
    id integer primary key,
    source text not null,
    received_at text not null,
    reason text not null,
    body text not null
);
create table if not exists outbox (
    dest text not null,
    seq integer not null,
    attempts integer not null default 0,
    next_at integer not null default 0,
    primary key (dest, seq)
) without rowid;
create table if not exists dead (
    dest text not null,
    seq integer not null,
    error text not null,
    at text not null,
    primary key (dest, seq)
) without rowid;
create table if not exists profiles (
    id integer primary key,
    data text not null
);
create table if not exists identities (
    ident text primary key,
    profile integer not null
) without rowid;
create table if not exists stats (
    minute integer not null,
    dest text not null,
    metric text not null,
    category text not null default '',
    n integer not null,
    primary key (minute, dest, metric, category)
) without rowid;
