create table if not exists events (
    seq integer primary key,
    source text not null,
    message_id text not null,
    received_at text not null,
    body text not null,
    decisions text not null,
    warnings text,
    -- the destinations the event is routed to, a JSON array of ids (delivery/routes.rs;
    -- logs written before hold ",a,b,")
    routes text not null default ''
);
create table if not exists dedupe (
    source text not null,
    message_id text not null,
    primary key (source, message_id)
) without rowid;
-- the previous day's messageIds (see retention.rs)
create table if not exists dedupe_prev (
    source text not null,
    message_id text not null,
    primary key (source, message_id)
) without rowid;
create table if not exists meta (
    key text primary key,
    value integer not null
);
create table if not exists invalid (
    id integer primary key,
    source text not null,
    received_at text not null,
    reason text not null,
    body text not null
);
-- per destination: every routed event with seq <= delivered_seq is delivered (or dead);
-- a failing head batch is retried at next_at (Unix milliseconds)
create table if not exists cursors (
    dest text primary key,
    delivered_seq integer not null default 0,
    attempts integer not null default 0,
    next_at integer not null default 0
);
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
-- merges move every identifier of a profile: found by profile, not by scanning the table
create index if not exists identities_profile on identities (profile);
-- events dropped at ingest because an identifier is suppressed by a privacy request (never
-- stored: only their count, per minute and source)
create table if not exists privacy_drops (
    minute integer not null,
    source text not null,
    n integer not null,
    primary key (minute, source)
) without rowid;
create table if not exists stats (
    minute integer not null,
    dest text not null,
    metric text not null,
    category text not null default '',
    n integer not null,
    primary key (minute, dest, metric, category)
) without rowid;
