//! State files are private: the state folder is created `0700`, its databases and lock files
//! `0600` (SQLite gives its `-wal` and `-shm` files the database file's mode), so other users of
//! the machine read neither personal data nor sealed credentials.

use std::path::Path;

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

/// Makes sure `path` exists and only its owner can read or write it (`0600`), tightening a file
/// an older version left readable by others.
pub fn private_file(path: &Path) -> std::io::Result<()> {
    let mut o = std::fs::OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let f = o.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if f.metadata()?.permissions().mode() & 0o077 != 0 {
            f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}
