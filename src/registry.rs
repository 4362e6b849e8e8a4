//! The process-wide registry of task functions by name. The same name resolves in
//! the manager's process and in every worker process that registered it, which is
//! what lets a function task run anywhere.

use std::collections::BTreeMap;
use std::ffi::CStr;
use std::sync::{Arc, OnceLock, RwLock};

use crate::error::{Error, ErrorKind, Result};
use crate::task::FunctionPtr;

struct Entry {
    name: Arc<CStr>,
    func: FunctionPtr,
}

fn registry() -> &'static RwLock<BTreeMap<Box<[u8]>, Entry>> {
    static REGISTRY: OnceLock<RwLock<BTreeMap<Box<[u8]>, Entry>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// Registers `func` as `name`. Registering the same pair again is harmless; the
/// same name with another pointer is an error.
pub fn register(name: &CStr, func: FunctionPtr) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid("a function name cannot be empty"));
    }
    let mut reg = registry().write().unwrap_or_else(|p| p.into_inner());
    if let Some(e) = reg.get(name.to_bytes()) {
        return if std::ptr::fn_addr_eq(e.func, func) {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::DuplicateFunction,
                format!(
                    "a different function is already registered as {:?}",
                    name.to_string_lossy()
                ),
            ))
        };
    }
    reg.insert(
        name.to_bytes().into(),
        Entry {
            name: Arc::from(name),
            func,
        },
    );
    Ok(())
}

/// The function registered as `name`, if any.
pub fn lookup(name: &CStr) -> Option<FunctionPtr> {
    let reg = registry().read().unwrap_or_else(|p| p.into_inner());
    reg.get(name.to_bytes()).map(|e| e.func)
}

/// The shared name and, when registered, the pointer: what a new task stores. The
/// name is shared with the registry so a million tasks do not copy it a million times.
///
/// A thread creating many tasks of one function asks for the same name again and
/// again; its last hit is kept per thread. A registered name never changes its
/// pointer (re-registering another is refused), so a kept hit is never stale.
pub(crate) fn lookup_for_task(name: &CStr) -> (Arc<CStr>, Option<FunctionPtr>) {
    thread_local! {
        static LAST: std::cell::RefCell<Option<(Arc<CStr>, FunctionPtr)>> = const { std::cell::RefCell::new(None) };
    }
    let cached = LAST.with(|l| {
        l.borrow()
            .as_ref()
            .filter(|(n, _)| **n == *name)
            .map(|(n, f)| (n.clone(), *f))
    });
    if let Some((n, f)) = cached {
        return (n, Some(f));
    }
    let reg = registry().read().unwrap_or_else(|p| p.into_inner());
    match reg.get(name.to_bytes()) {
        Some(e) => {
            LAST.with(|l| *l.borrow_mut() = Some((e.name.clone(), e.func)));
            (e.name.clone(), Some(e.func))
        }
        None => (Arc::from(name), None),
    }
}

/// Every registered name (what a worker tells its manager it can run).
pub fn names() -> Vec<Vec<u8>> {
    let reg = registry().read().unwrap_or_else(|p| p.into_inner());
    reg.values().map(|e| e.name.to_bytes().to_vec()).collect()
}
