//! The one place where C meets Rust: the panic guard every entry point runs its
//! body in, the thread-local last error, and the conversions from C pointers to
//! the library's objects.

use std::cell::RefCell;
use std::ffi::{c_char, c_int, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::error::{Error, ErrorKind, Result};

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
    static LAST_CODE: std::cell::Cell<c_int> = const { std::cell::Cell::new(0) };
}

/// The fixed C code of each error kind.
pub(crate) fn code_of(kind: ErrorKind) -> c_int {
    use super::constants::*;
    match kind {
        ErrorKind::Null => VINE_ERROR_NULL,
        ErrorKind::InvalidArgument => VINE_ERROR_INVALID_ARGUMENT,
        ErrorKind::InvalidHandle => VINE_ERROR_INVALID_HANDLE,
        ErrorKind::UnknownTask => VINE_ERROR_UNKNOWN_TASK,
        ErrorKind::ShutDown => VINE_ERROR_SHUT_DOWN,
        ErrorKind::TaskSubmitted => VINE_ERROR_TASK_SUBMITTED,
        ErrorKind::UnknownSetting => VINE_ERROR_UNKNOWN_SETTING,
        ErrorKind::DuplicateFunction => VINE_ERROR_DUPLICATE_FUNCTION,
        ErrorKind::Io => VINE_ERROR_IO,
        ErrorKind::Unsupported => VINE_ERROR_UNSUPPORTED,
        ErrorKind::Timeout => VINE_ERROR_TIMEOUT,
        ErrorKind::Internal => VINE_ERROR_INTERNAL,
    }
}

/// Records `e` as this thread's last error and returns its code.
pub(crate) fn record(e: &Error) -> c_int {
    let msg = CString::new(e.message().replace('\0', " ")).unwrap_or_default();
    // A thread that is exiting has no last error any more; the code still goes back.
    let _ = LAST_ERROR.try_with(|l| {
        if let Ok(mut l) = l.try_borrow_mut() {
            *l = msg;
        }
    });
    let code = code_of(e.kind());
    let _ = LAST_CODE.try_with(|c| c.set(code));
    code
}

/// The code of this thread's last error (0 if none).
pub(crate) fn last_error_code() -> c_int {
    LAST_CODE.try_with(std::cell::Cell::get).unwrap_or(0)
}

/// The last error message of this thread (valid until its next failing call).
pub(crate) fn last_error() -> *const c_char {
    LAST_ERROR
        .try_with(|l| l.borrow().as_ptr())
        .unwrap_or(c"".as_ptr())
}

fn panic_error() -> Error {
    Error::new(
        ErrorKind::Internal,
        "internal error in vine (a bug): the call was abandoned",
    )
}

/// Runs an entry point's body: `Err` and panics become `on_error` with the last
/// error set. No panic crosses into C.
///
/// Every `extern "C"` function of the library has as its whole body one call of
/// this guard or of [`guard_code`] / [`guard_or_code`] (the same guard with the
/// error code as the value), with everything it does inside: tests/ffi_guard.rs
/// checks it.
pub(crate) fn guard<T>(on_error: T, body: impl FnOnce() -> Result<T>) -> T {
    guard_or_code(body, |_| on_error)
}

/// Like [`guard`], and on failure also sets `errno` from the error (e.g.
/// `EADDRINUSE`, `EINVAL`), as TaskVine's constructors do.
pub(crate) fn guard_errno<T>(on_error: T, body: impl FnOnce() -> Result<T>) -> T {
    let mut errno = libc::EIO;
    let out = guard_or_code(
        || body().map(Some).inspect_err(|e| errno = e.errno()),
        |_| None,
    );
    out.unwrap_or_else(|| {
        // SAFETY: errno is this thread's own variable, always addressable.
        unsafe { *libc::__errno_location() = errno };
        on_error
    })
}

/// Runs a body that returns a status: 0 (or a count) on success, the error's
/// negative code on failure.
pub(crate) fn guard_code(body: impl FnOnce() -> Result<c_int>) -> c_int {
    guard_or_code(body, |code| code)
}

/// Runs a body whose errors are reported as `from_code(negative code)`.
pub(crate) fn guard_or_code<T>(
    body: impl FnOnce() -> Result<T>,
    from_code: impl FnOnce(c_int) -> T,
) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => from_code(record(&e)),
        Err(_) => from_code(record(&panic_error())),
    }
}

/// The error for a NULL argument named `what`.
pub(crate) fn null(what: &str) -> Error {
    Error::new(ErrorKind::Null, format!("{what} is NULL"))
}

/// Borrows a C string argument, refusing NULL.
///
/// # Safety
/// `p`, when not NULL, must point to a NUL-terminated string that outlives `'a`.
pub(crate) unsafe fn c_str<'a>(p: *const c_char, what: &str) -> Result<&'a CStr> {
    if p.is_null() {
        return Err(null(what));
    }
    // SAFETY: non-NULL and NUL-terminated by the caller's contract.
    Ok(unsafe { CStr::from_ptr(p) })
}

/// A path argument named `what`: not NULL, UTF-8, not empty.
///
/// # Safety
/// `path`, when not NULL, must point to a NUL-terminated string that outlives `'a`.
pub(crate) unsafe fn path_of<'a>(path: *const c_char, what: &str) -> Result<&'a str> {
    // SAFETY: C passes a NUL-terminated string or NULL, valid during the call.
    let p = crate::manager::Manager::utf8(unsafe { c_str(path, what)? })?;
    if p.is_empty() {
        return Err(Error::invalid(format!("{what} cannot be empty")));
    }
    Ok(p)
}

/// Borrows `len` bytes at `p`; NULL is allowed only when `len` is 0.
///
/// # Safety
/// `p`, when not NULL, must point to `len` readable bytes that outlive `'a`.
pub(crate) unsafe fn bytes<'a>(
    p: *const std::ffi::c_void,
    len: usize,
    what: &str,
) -> Result<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(null(what));
    }
    if len > isize::MAX as usize {
        return Err(Error::invalid(format!("{what} is too long")));
    }
    // SAFETY: non-NULL, `len` readable bytes by the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) })
}

/// An error unless `len` bytes can be had for a copy of `what`: an allocation
/// that fails aborts the program, so a length the caller could give without
/// holding that much memory (a large mapping, a wrong length) is tried first.
/// Small copies are not tried.
pub(crate) fn can_copy(len: usize, what: &str) -> Result<()> {
    if len <= 1 << 20 {
        return Ok(());
    }
    let mut probe: Vec<u8> = Vec::new();
    probe.try_reserve_exact(len).map_err(|_| {
        Error::invalid(format!(
            "{what} is {len} bytes, more memory than can be had for a copy of it"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_in_a_body_becomes_the_error_value_and_the_last_error() {
        let v = guard(7, || -> Result<i32> { panic!("a bug") });
        assert_eq!(v, 7);
        // SAFETY: the last error is a valid NUL-terminated string of this thread.
        let msg = unsafe { CStr::from_ptr(last_error()) };
        assert!(msg.to_str().unwrap().contains("internal error"), "{msg:?}");
        let code = guard_code(|| -> Result<c_int> { panic!("another") });
        assert_eq!(code, code_of(ErrorKind::Internal));
        assert!(code < 0);
    }
}
