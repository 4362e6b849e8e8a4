//! The library's one error type. Every fallible operation inside vine returns
//! [`Error`]; the C boundary maps each kind once to a fixed `vine_error_t` code and
//! keeps the message for `vine_last_error()`.

use std::fmt;

/// What went wrong, as a kind (which becomes the C error code) and a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    /// The operating system's error number, when an OS call failed.
    os_code: Option<i32>,
}

/// The kinds of failure a caller can act on. Their C codes are fixed forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A required pointer argument was NULL.
    Null,
    /// An argument was out of range or malformed.
    InvalidArgument,
    /// A handle the library does not know (deleted manager, foreign file).
    InvalidHandle,
    /// No outstanding task has that id.
    UnknownTask,
    /// The manager was shut down.
    ShutDown,
    /// The task already belongs to a manager.
    TaskSubmitted,
    /// `vine_tune` was given a name it does not know.
    UnknownSetting,
    /// A function name is already registered with another pointer.
    DuplicateFunction,
    /// An operating-system call failed.
    Io,
    /// The operation is not supported by this build or configuration.
    Unsupported,
    /// A bounded wait ran out.
    Timeout,
    /// A bug inside the library was caught at the boundary.
    Internal,
}

impl Error {
    /// An error of `kind` explained by `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            os_code: None,
        }
    }

    /// An argument error.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }

    /// An I/O error with the context it happened in.
    pub fn io(context: impl fmt::Display, err: std::io::Error) -> Self {
        let mut e = Self::new(ErrorKind::Io, format!("{context}: {err}"));
        e.os_code = err.raw_os_error();
        e
    }

    /// The same error, giving `errno` the value `code` (see [`Error::errno`]).
    pub fn with_errno(mut self, code: i32) -> Self {
        self.os_code = Some(code);
        self
    }

    /// The `errno` value that describes it: the operating system's own for a
    /// failed OS call, else the closest one for its kind.
    pub fn errno(&self) -> i32 {
        self.os_code.unwrap_or(match self.kind {
            ErrorKind::Io => libc::EIO,
            ErrorKind::Unsupported => libc::ENOTSUP,
            ErrorKind::Timeout => libc::ETIMEDOUT,
            ErrorKind::Internal => libc::EIO,
            _ => libc::EINVAL,
        })
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The human sentence.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// Shorthand for results inside the library.
pub type Result<T> = std::result::Result<T, Error>;

/// A number as an error message shows it: as written when it is of a size
/// people write out (1000, 0.25, -5), in exponent form when that would run to
/// many digits (1e300, 2.5e-12), so a message never spells out 300 zeros.
pub(crate) struct Shown(pub(crate) f64);

impl fmt::Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        let a = v.abs();
        if v.is_finite() && (a >= 1e9 || (a != 0.0 && a < 1e-6)) {
            write!(f, "{v:e}")
        } else {
            write!(f, "{v}")
        }
    }
}

#[cfg(test)]
mod test {
    use super::Shown;

    #[test]
    fn numbers_in_messages_are_short_whatever_their_size() {
        let shown = |v: f64| Shown(v).to_string();
        assert_eq!(shown(1e300), "1e300");
        assert_eq!(shown(-1e300), "-1e300");
        assert_eq!(shown(f64::MAX), "1.7976931348623157e308");
        assert_eq!(shown(5e-324), "5e-324");
        assert_eq!(shown(2.5e-12), "2.5e-12");
        assert_eq!(shown(1000.0), "1000");
        assert_eq!(shown(0.25), "0.25");
        assert_eq!(shown(-5.0), "-5");
        assert_eq!(shown(0.0), "0");
        assert_eq!(shown(123456789.0), "123456789");
        assert_eq!(shown(f64::NAN), "NaN");
        assert_eq!(shown(f64::NEG_INFINITY), "-inf");
    }
}
