//! What the connected role may do beyond reading tables. A read-only transaction stops
//! writes to tables and sequences, but not a superuser (or a member of the server-file
//! roles) reading and writing the server's files (`pg_read_file`, `lo_export`) or running
//! programs there.

use postgres::Client;

/// Predefined roles that reach the database server's files or programs (PostgreSQL ≥ 11).
const SERVER_ROLES: [&str; 3] = ["pg_read_server_files", "pg_write_server_files", "pg_execute_server_program"];

/// The connected role's name, and why it is dangerous for model SQL (`None` when it is not).
pub(super) fn privileged(client: &mut Client) -> Result<(String, Option<String>), postgres::Error> {
    let user: String = client.query_one("SELECT current_user::text", &[])?.try_get(0)?;
    // every role it can become (SET ROLE works inside a read-only transaction): superusers,
    // and the predefined roles that reach the server's files and programs
    let found = client.query(
        "SELECT r.rolname::text, r.rolsuper, r.rolname = current_user
         FROM pg_catalog.pg_roles r
         WHERE pg_catalog.pg_has_role(current_user, r.oid, 'MEMBER')
           AND (r.rolsuper OR r.rolname = ANY($1))
         ORDER BY 3 DESC, 1",
        &[&SERVER_ROLES.as_slice()],
    );
    let rows = match found {
        Ok(rows) => rows,
        // servers without pg_roles or pg_has_role (Redshift): only the superuser flag exists
        Err(e) if e.as_db_error().is_some() => {
            let su: Option<bool> = client
                .query_opt("SELECT usesuper FROM pg_catalog.pg_user WHERE usename = current_user", &[])?
                .map(|r| r.try_get(0))
                .transpose()?;
            return Ok((user, su.unwrap_or(false).then(|| "is a superuser".to_string())));
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
    let why = if superuser {
        Some("is a superuser".into())
    } else if via.is_empty() {
        None
    } else {
        Some(format!("is a member of {}", via.join(", ")))
    };
    Ok((user, why))
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
