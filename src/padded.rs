//! A value alone on its cache lines.
//!
//! Counters and locks that different threads write go on lines of their own, so
//! that a submitter bumping the next task id does not take from the manager thread
//! the line holding the completion queue, and the other way round. 128 bytes: a
//! line and the neighbour that x86 fetches with it.

use std::ops::Deref;

/// `T` aligned and padded to 128 bytes.
#[derive(Default, Debug)]
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

impl<T> Deref for Padded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}
