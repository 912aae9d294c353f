//! Timestamps and how long ago they were: RFC 3339 read and written without a calendar
//! library, and durations in Kubernetes' human notation (`duration.HumanDuration`,
//! `duration.ShortHumanDuration`: `5s`, `3m20s`, `2d3h`, `<invalid>`).

use serde_json::Value;

/// A point in time: seconds since the Unix epoch and the nanoseconds past them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp {
    pub secs: i64,
    pub nanos: u32,
}

/// `0001-01-01T00:00:00Z`, the zero time an unset timestamp reads as.
pub(crate) const ZERO_SECS: i64 = -62_135_596_800;

const NANOS_PER_SEC: i128 = 1_000_000_000;

/// Reads an RFC 3339 timestamp (`2024-05-01T10:00:00Z`, `…T10:00:00.123456+02:00`).
pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let (hour, min, sec) = (
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    );
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let mut rest = &b[19..];
    let mut nanos = 0u32;
    if rest.first() == Some(&b'.') {
        let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        for (i, c) in rest[1..=n].iter().enumerate() {
            if i < 9 {
                nanos = nanos * 10 + u32::from(c - b'0');
            }
        }
        nanos *= 10u32.pow(9u32.saturating_sub(n as u32));
        rest = &rest[n + 1..];
    }
    let offset = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let off = digits(&[*h1, *h2])? * 3600 + digits(&[*m1, *m2])? * 60;
            if *sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + min * 60 + sec - offset;
    Some(Timestamp { secs, nanos })
}

/// Writes `secs` since the epoch as RFC 3339 in UTC (`2024-05-01T10:00:00Z`).
pub fn format_rfc3339(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// How long ago `ts` (a timestamp field) was at `now`, as Kubernetes prints an age:
/// `<unknown>` when it is unset, `<invalid>` when it is not a timestamp.
pub(crate) fn since(ts: &Value, now: i64) -> String {
    match ts.as_str() {
        None => "<unknown>".to_string(),
        Some(s) => match parse_rfc3339(s) {
            None => "<invalid>".to_string(),
            Some(t) => since_timestamp(t, now),
        },
    }
}

/// How long ago `t` was at `now`; `<unknown>` for the zero time.
pub(crate) fn since_timestamp(t: Timestamp, now: i64) -> String {
    if t.secs == ZERO_SECS && t.nanos == 0 {
        return "<unknown>".to_string();
    }
    human_nanos(between(t, now))
}

/// Nanoseconds from `t` to `now`.
fn between(t: Timestamp, now: i64) -> i128 {
    i128::from(now) * NANOS_PER_SEC - (i128::from(t.secs) * NANOS_PER_SEC + i128::from(t.nanos))
}

/// Nanoseconds from `from` to `to`.
pub(crate) fn elapsed(from: Timestamp, to: Timestamp) -> i128 {
    (i128::from(to.secs) - i128::from(from.secs)) * NANOS_PER_SEC + i128::from(to.nanos)
        - i128::from(from.nanos)
}

/// A duration of `secs` seconds with ~2–3 significant figures, as `duration.HumanDuration`
/// writes it: `45s`, `3m20s`, `2h5m`, `2d3h`, `3y45d`; `<invalid>` below -1s.
pub fn human_duration(secs: i64) -> String {
    human_nanos(i128::from(secs) * NANOS_PER_SEC)
}

pub(crate) fn human_nanos(d: i128) -> String {
    let seconds = d / NANOS_PER_SEC;
    // A clock up to a second ahead of the writer's still reads as "now".
    if seconds < -1 {
        return "<invalid>".to_string();
    } else if seconds < 0 {
        return "0s".to_string();
    } else if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        return with_rest(minutes, "m", seconds % 60, "s");
    } else if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        with_rest(hours, "h", minutes % 60, "m")
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        with_rest(hours / 24, "d", hours % 24, "h")
    } else if hours < 24 * 365 * 2 {
        format!("{}d", hours / 24)
    } else if hours < 24 * 365 * 8 {
        with_rest(hours / 24 / 365, "y", (hours / 24) % 365, "d")
    } else {
        format!("{}y", hours / 24 / 365)
    }
}

fn with_rest(big: i128, big_unit: &str, rest: i128, rest_unit: &str) -> String {
    if rest == 0 {
        format!("{big}{big_unit}")
    } else {
        format!("{big}{big_unit}{rest}{rest_unit}")
    }
}

/// A duration of `secs` seconds in one unit, as `duration.ShortHumanDuration` writes it:
/// `45s`, `3m`, `5h`, `12d`, `2y`; `<invalid>` below -1s.
pub fn short_human_duration(secs: i64) -> String {
    if secs < -1 {
        "<invalid>".to_string()
    } else if secs < 0 {
        "0s".to_string()
    } else if secs < 60 {
        format!("{secs}s")
    } else if secs < 3600 {
        format!("{}m", secs / 60)
    } else if secs < 86_400 {
        format!("{}h", secs / 3600)
    } else if secs < 86_400 * 365 {
        format!("{}d", secs / 86_400)
    } else {
        format!("{}y", secs / 86_400 / 365)
    }
}

fn digits(b: &[u8]) -> Option<i64> {
    b.iter().try_fold(0i64, |acc, c| {
        c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
    })
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date `z` days after 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400;
    (if m <= 2 { y + 1 } else { y }, m, d)
}
