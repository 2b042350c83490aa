//! Standard output that a closed pipe ends quietly.

use std::io::Write;

/// Writes to stdout; a closed pipe (the reader went away) ends the process with status 0, any
/// other write error with status 1, never with a panic.
pub fn write(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}
