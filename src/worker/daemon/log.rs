//! Where a worker's messages go: notices (why a connection ended, why it exits)
//! to standard error, or to the file of `-o`/`--debug-file`; debug messages (what
//! it connects to, sessions, exits) too when `-d`/`--debug` names a subsystem.

use std::io::Write;
use std::sync::Mutex;

/// The destination, and whether debug messages are written.
struct Sink {
    file: Option<std::fs::File>,
    stdout: bool,
    debug: bool,
}

static SINK: Mutex<Sink> = Mutex::new(Sink {
    file: None,
    stdout: false,
    debug: false,
});

fn sink() -> std::sync::MutexGuard<'static, Sink> {
    SINK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Sends messages to `file` (`:stderr`, `:stdout` or a path, appended to; None:
/// standard error), with debug messages if `debug`.
pub(super) fn configure(file: Option<&std::path::Path>, debug: bool) -> crate::error::Result<()> {
    let mut s = sink();
    s.debug = debug;
    s.stdout = false;
    s.file = None;
    match file.and_then(|f| f.to_str().map(|t| (f, t))) {
        None | Some((_, ":stderr")) => {}
        Some((_, ":stdout")) => s.stdout = true,
        Some((path, _)) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| crate::error::Error::io(path.display(), e))?;
            s.file = Some(f);
        }
    }
    Ok(())
}

fn write(s: &mut Sink, line: &str) {
    let line = format!("vine_worker: {line}\n");
    let _ = match (&mut s.file, s.stdout) {
        (Some(f), _) => f.write_all(line.as_bytes()),
        (None, true) => std::io::stdout().write_all(line.as_bytes()),
        (None, false) => std::io::stderr().write_all(line.as_bytes()),
    };
}

/// A message always written.
pub(super) fn notice(line: &str) {
    write(&mut sink(), line);
}

/// A message written only with `-d`.
pub(super) fn debug(line: impl FnOnce() -> String) {
    let mut s = sink();
    if s.debug {
        let line = line();
        write(&mut s, &line);
    }
}

/// True if messages go to a file rather than standard error.
pub(super) fn to_file() -> bool {
    let s = sink();
    s.file.is_some() || s.stdout
}
