//! The frame decoder, as each side reads: frames until the first error. It must
//! return a frame or an error for any bytes, and never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vine::protocol::{read_frame, ToManager, ToWorker};

fuzz_target!(|data: &[u8]| {
    let mut r = data;
    while read_frame::<ToWorker>(&mut r).is_ok() {}
    let mut r = data;
    while read_frame::<ToManager>(&mut r).is_ok() {}
});
