//! Loading a shared library of task functions into a worker (`--library`): an OS
//! call (dlopen), handing the library the C registration entry point.

use std::ffi::{c_int, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::error::{Error, ErrorKind, Result};

/// The entry a library exports to register its functions:
/// `int vine_register_functions(int (*register_function)(const char *, vine_function_t))`.
/// It calls `register_function(name, fn)` for each function and returns 0.
const ENTRY: &std::ffi::CStr = c"vine_register_functions";

/// Loads `path` for good (its functions stay callable for the life of the
/// process) and calls its `vine_register_functions`, if it has one.
pub fn load(path: &Path) -> Result<()> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::invalid("library path has a NUL byte"))?;
    // SAFETY: a valid NUL-terminated path; dlopen has no other precondition. Running
    // the library's constructors is what loading it asks for.
    let handle = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
    if handle.is_null() {
        // SAFETY: dlerror returns a thread-local message or NULL.
        let msg = unsafe { libc::dlerror() };
        let why = if msg.is_null() {
            "unknown error".to_owned()
        } else {
            // SAFETY: non-NULL NUL-terminated string from dlerror.
            unsafe { std::ffi::CStr::from_ptr(msg) }
                .to_string_lossy()
                .into_owned()
        };
        return Err(Error::new(
            ErrorKind::Io,
            format!("cannot load {}: {why}", path.display()),
        ));
    }
    // SAFETY: a handle from dlopen and a NUL-terminated symbol name.
    let sym = unsafe { libc::dlsym(handle, ENTRY.as_ptr()) };
    if sym.is_null() {
        // Its constructors may have registered functions themselves.
        return Ok(());
    }
    type Register = unsafe extern "C" fn(
        *const std::ffi::c_char,
        crate::ffi::function::vine_function_t,
    ) -> c_int;
    // SAFETY: the documented signature of the entry takes the register function.
    let entry: unsafe extern "C" fn(Register) -> c_int = unsafe { std::mem::transmute(sym) };
    // SAFETY: calling the library's entry as documented, with our own function.
    let rc = unsafe { entry(crate::ffi::function::vine_register_function) };
    if rc != 0 {
        return Err(Error::new(
            ErrorKind::Io,
            format!("{}: vine_register_functions returned {rc}", path.display()),
        ));
    }
    Ok(())
}
