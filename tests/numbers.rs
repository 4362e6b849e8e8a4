//! Every number crosses the C boundary checked: out of its documented range it is
//! refused with an error code and a message, and the manager goes on working.

use std::ffi::CStr;

use vine::ffi::manager::*;
use vine::ffi::task::*;
use vine::ffi::*;
use vine::Manager;

const PAST_RANGE: [f64; 6] = [
    1e300,
    1e19,
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
    -1.0,
];

fn last_error() -> String {
    // SAFETY: vine_last_error never returns NULL and its string is NUL-terminated.
    unsafe { CStr::from_ptr(vine_last_error()) }
        .to_string_lossy()
        .into_owned()
}

#[test]
fn numbers_past_their_range_are_refused_and_the_manager_keeps_working() {
    let m = vine_create(VINE_PORT_NONE);
    assert!(!m.is_null());
    for name in Manager::setting_names() {
        let cname = std::ffi::CString::new(*name).unwrap();
        for v in PAST_RANGE {
            // SAFETY: a live manager and a NUL-terminated name.
            let rc = unsafe { vine_tune(m, cname.as_ptr(), v) };
            assert_eq!(rc, VINE_ERROR_INVALID_ARGUMENT, "{name} = {v}");
            assert!(!last_error().is_empty());
        }
    }
    // SAFETY: a NUL-terminated command.
    let t = unsafe { vine_task_create(c"echo ran".as_ptr()) };
    for v in PAST_RANGE {
        assert_eq!(
            vine_task_set_time_max(t, v),
            VINE_ERROR_INVALID_ARGUMENT,
            "{v}"
        );
        assert!(last_error().contains("time_max"), "{}", last_error());
        assert_eq!(
            vine_task_set_time_min(t, v),
            VINE_ERROR_INVALID_ARGUMENT,
            "{v}"
        );
        assert_eq!(
            vine_task_set_cores(t, v),
            VINE_ERROR_INVALID_ARGUMENT,
            "{v}"
        );
    }
    for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        assert_eq!(vine_task_set_priority(t, v), VINE_ERROR_INVALID_ARGUMENT);
    }
    for v in [-1, i64::MAX, 1_000_000_000_001] {
        assert_eq!(
            vine_task_set_memory(t, v),
            VINE_ERROR_INVALID_ARGUMENT,
            "{v}"
        );
        assert_eq!(vine_task_set_disk(t, v), VINE_ERROR_INVALID_ARGUMENT, "{v}");
    }
    for v in [-1, i32::MAX] {
        assert_eq!(vine_task_set_gpus(t, v), VINE_ERROR_INVALID_ARGUMENT, "{v}");
        assert_eq!(vine_task_set_retries(t, -1), VINE_ERROR_INVALID_ARGUMENT);
    }
    // The largest values in range are taken, and the task still runs.
    assert_eq!(vine_task_set_time_max(t, 1e9), 0);
    let id = vine_submit(m, t);
    assert!(id > 0, "{}", last_error());
    let back = vine_wait(m, VINE_WAIT_FOREVER);
    assert_eq!(back, t);
    assert_eq!(vine_task_get_result(back), VINE_RESULT_SUCCESS);
    assert_eq!(vine_task_delete(back), 0);
    // A shutdown-timeout at the top of its range is a deadline like any other.
    // SAFETY: a live manager and a NUL-terminated name.
    assert_eq!(
        unsafe { vine_tune(m, c"shutdown-timeout".as_ptr(), 1e9) },
        0
    );
    assert_eq!(vine_shutdown(m), 0, "{}", last_error());
    vine_delete(m);
}
