//! Numbers and resource dictionaries as TaskVine's logs write them, appended to
//! a byte buffer without allocating.

use crate::resources::{Resources, MILLI};

/// Appends `v` in decimal.
pub(crate) fn uint(buf: &mut Vec<u8>, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[i..]);
}

/// Appends `v` in decimal, with its sign.
pub(crate) fn int(buf: &mut Vec<u8>, v: i64) {
    if v < 0 {
        buf.push(b'-');
    }
    uint(buf, v.unsigned_abs());
}

/// Appends `num / den` with up to `places` decimals, trailing zeros removed.
fn fixed(buf: &mut Vec<u8>, num: i64, den: u64, places: usize) {
    if num < 0 {
        buf.push(b'-');
    }
    let n = num.unsigned_abs();
    uint(buf, n / den);
    let mut frac = n % den;
    if frac == 0 {
        return;
    }
    buf.push(b'.');
    let mut digits = Vec::with_capacity(places);
    let mut scale = den;
    for _ in 0..places {
        scale /= 10;
        if scale == 0 {
            break;
        }
        digits.push(b'0' + (frac / scale) as u8);
        frac %= scale;
    }
    while digits.last() == Some(&b'0') {
        digits.pop();
    }
    buf.extend_from_slice(&digits);
}

/// Appends microseconds as seconds (`12.5`).
pub(crate) fn seconds(buf: &mut Vec<u8>, us: i64) {
    fixed(buf, us, 1_000_000, 6);
}

/// Appends thousandths of a core as cores (`0.25`).
pub(crate) fn cores(buf: &mut Vec<u8>, millicores: u64) {
    fixed(buf, millicores.min(i64::MAX as u64) as i64, MILLI, 3);
}

/// Opens a resource dictionary: `{"cores":[1,"cores"]` and memory, disk and gpus
/// when set (or `all`); the caller may add entries and must call [`close`].
pub(crate) fn open_resources(buf: &mut Vec<u8>, r: &Resources, all: bool) {
    buf.extend_from_slice(b"{\"cores\":[");
    cores(buf, r.millicores);
    buf.extend_from_slice(b",\"cores\"]");
    if all || r.memory_mb > 0 {
        buf.extend_from_slice(b",\"memory\":[");
        uint(buf, r.memory_mb);
        buf.extend_from_slice(b",\"MB\"]");
    }
    if all || r.disk_mb > 0 {
        buf.extend_from_slice(b",\"disk\":[");
        uint(buf, r.disk_mb);
        buf.extend_from_slice(b",\"MB\"]");
    }
    if all || r.gpus > 0 {
        buf.extend_from_slice(b",\"gpus\":[");
        uint(buf, u64::from(r.gpus));
        buf.extend_from_slice(b",\"gpus\"]");
    }
}

/// Adds `"name":[seconds,"s"]` to an open dictionary.
pub(crate) fn add_seconds(buf: &mut Vec<u8>, name: &str, us: i64) {
    buf.extend_from_slice(b",\"");
    buf.extend_from_slice(name.as_bytes());
    buf.extend_from_slice(b"\":[");
    seconds(buf, us);
    buf.extend_from_slice(b",\"s\"]");
}

/// Closes a dictionary.
pub(crate) fn close(buf: &mut Vec<u8>) {
    buf.push(b'}');
}

#[cfg(test)]
mod test {
    use super::*;

    fn s(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut b = Vec::new();
        f(&mut b);
        String::from_utf8(b).unwrap()
    }

    #[test]
    fn numbers() {
        assert_eq!(s(|b| uint(b, 0)), "0");
        assert_eq!(s(|b| uint(b, u64::MAX)), "18446744073709551615");
        assert_eq!(s(|b| int(b, i64::MIN)), "-9223372036854775808");
        assert_eq!(s(|b| seconds(b, 1_500_000)), "1.5");
        assert_eq!(
            s(|b| seconds(b, 1_733_000_000_000_001)),
            "1733000000.000001"
        );
        assert_eq!(s(|b| seconds(b, -250_000)), "-0.25");
        assert_eq!(s(|b| cores(b, 250)), "0.25");
        assert_eq!(s(|b| cores(b, 2000)), "2");
    }

    #[test]
    fn resources() {
        let r = Resources {
            millicores: 1500,
            memory_mb: 100,
            disk_mb: 0,
            gpus: 0,
        };
        let got = s(|b| {
            open_resources(b, &r, false);
            add_seconds(b, "time_commit_start", 2_000_000);
            close(b);
        });
        assert_eq!(
            got,
            r#"{"cores":[1.5,"cores"],"memory":[100,"MB"],"time_commit_start":[2,"s"]}"#
        );
    }
}
