//! What the connected role may do beyond reading tables. A read-only transaction stops
//! writes to tables and sequences, but not a superuser (or a member of the server-file
//! roles) reading and writing the server's files (`pg_read_file`, `lo_export`) or running
//! programs there.

use postgres::Client;

/// Predefined roles that reach the database server's files or programs (PostgreSQL ≥ 11).
const SERVER_ROLES: [&str; 3] = ["pg_read_server_files", "pg_write_server_files", "pg_execute_server_program"];

/// The role at fault and why it is dangerous for model SQL; `None` when neither the session's
/// role nor the current one (the URL may `SET ROLE` through `options`) is.
pub(super) fn privileged(
    client: &mut Client,
    dialect: super::Dialect,
) -> Result<Option<(String, String)>, postgres::Error> {
    if dialect == super::Dialect::Redshift {
        // Redshift has neither pg_roles' server-file roles nor pg_has_role: only the superuser flag
        let user: String = client.query_one("SELECT current_user::varchar(128)", &[])?.try_get(0)?;
        return Ok(superuser(client, &user)?.then(|| (user, "is a superuser".to_string())));
    }
    let row = client.query_one("SELECT session_user::text, current_user::text", &[])?;
    let (session, current): (String, String) = (row.try_get(0)?, row.try_get(1)?);
    // the session's role can always return to itself (RESET ROLE), even in a read-only transaction
    for user in [session.clone(), current].into_iter().collect::<std::collections::BTreeSet<_>>() {
        if let Some(why) = dangerous(client, &user)? {
            return Ok(Some((user, why)));
        }
    }
    Ok(None)
}

/// Why `user` is dangerous: a superuser, or a member of a role that is one or that reaches the
/// server's files or programs (SET ROLE works inside a read-only transaction).
fn dangerous(client: &mut Client, user: &str) -> Result<Option<String>, postgres::Error> {
    let found = client.query(
        "SELECT r.rolname::text, r.rolsuper, r.rolname = $1
         FROM pg_catalog.pg_roles r
         WHERE pg_catalog.pg_has_role($1::name, r.oid, 'MEMBER')
           AND (r.rolsuper OR r.rolname = ANY($2))
         ORDER BY 3 DESC, 1",
        &[&user, &SERVER_ROLES.as_slice()],
    );
    let rows = match found {
        Ok(rows) => rows,
        // servers without pg_roles or pg_has_role (Redshift): only the superuser flag exists
        Err(e) if e.as_db_error().is_some() => {
            return Ok(superuser(client, user)?.then(|| "is a superuser".to_string()));
        }
        Err(e) => return Err(e),
    };
    let mut superuser = false;
    let mut via = Vec::new();
    for r in &rows {
        let (name, is_super, itself): (String, bool, bool) = (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
        if itself && is_super {
            superuser = true;
        } else if !itself {
            via.push(if is_super { format!("{name} (a superuser)") } else { name });
        }
    }
    Ok(if superuser {
        Some("is a superuser".into())
    } else if via.is_empty() {
        None
    } else {
        Some(format!("is a member of {}", via.join(", ")))
    })
}

/// `pg_user.usesuper` of `user` (PostgreSQL and Redshift both have it).
fn superuser(client: &mut Client, user: &str) -> Result<bool, postgres::Error> {
    let su: Option<bool> = client
        .query_opt("SELECT usesuper FROM pg_catalog.pg_user WHERE usename = $1", &[&user])?
        .map(|r| r.try_get(0))
        .transpose()?;
    Ok(su.unwrap_or(false))
}

/// Why refusing, and how to fix it.
pub(super) fn refusal(user: &str, why: &str) -> String {
    format!(
        "role `{user}` {why}: model SQL could read and write the database server's files or run programs there, \
         which a read-only transaction does not prevent. Connect as a role that can only read (README, \
         \"Warehouse permissions\"), or set `allow_privileged_role: true` on the source to accept the risk"
    )
}

/// The warning of an explicitly allowed privileged role.
pub(super) fn warning(user: &str, why: &str) -> String {
    format!(
        "role `{user}` {why}; allowed by `allow_privileged_role`: model SQL can read and write the database \
         server's files. Prefer a read-only role (README, \"Warehouse permissions\")"
    )
}
