//! State files are private: the state folder is created `0700`, its databases, their `-wal` and
//! `-shm` files and lock files are `0600`, so other users of the machine read neither personal
//! data nor sealed credentials.
//!
//! Permissions are changed by path only, never by opening a database file: on POSIX, closing
//! any descriptor of a file drops every SQLite lock this process holds on it, which would let
//! another process (a CLI beside `sluice serve`) remove the WAL under a live connection.

use std::path::{Path, PathBuf};

/// Creates `dir` (and its parents) when missing; a folder this creates is `0700`.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

/// Makes `path` readable and writable by its owner only (`0600`) when it exists and others may
/// read it (a file SQLite just created, or one an older version left readable). Never opens it.
pub fn tighten(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        match std::fs::metadata(path) {
            Ok(m) if m.permissions().mode() & 0o077 != 0 => {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// [`tighten`] for an SQLite database and its `-wal` and `-shm` files (SQLite creates those with
/// the database file's mode, so once it is `0600` new ones are too).
pub fn tighten_db(db: &Path) -> std::io::Result<()> {
    let with = |suffix: &str| {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        PathBuf::from(p)
    };
    tighten(db)?;
    tighten(&with("-wal"))?;
    tighten(&with("-shm"))
}
