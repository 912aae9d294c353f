//! Cron schedules: five fields (minute, hour, day of month, month, day of week) or
//! @hourly and friends, matched in UTC.

use k8s_openapi::jiff::Timestamp;

/// A parsed five-field schedule: the allowed values of each field.
#[derive(Debug, PartialEq)]
pub(crate) struct Schedule {
    minutes: Vec<u32>,
    hours: Vec<u32>,
    days: Vec<u32>,
    months: Vec<u32>,
    weekdays: Vec<u32>,
    /// Both day fields restricted: either may match, as cron has it.
    day_or: bool,
}

fn field(s: &str, lo: u32, hi: u32, name: &str) -> Result<Vec<u32>, String> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, st)) => (
                r,
                st.parse::<u32>()
                    .map_err(|_| format!("{name}: bad step {st:?}"))?,
            ),
            None => (part, 1),
        };
        if step == 0 {
            return Err(format!("{name}: step must be positive"));
        }
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            let p = |x: &str| {
                x.parse::<u32>()
                    .map_err(|_| format!("{name}: bad value {x:?}"))
            };
            (p(a)?, p(b)?)
        } else {
            let v = range
                .parse::<u32>()
                .map_err(|_| format!("{name}: bad value {range:?}"))?;
            (v, if part.contains('/') { hi } else { v })
        };
        if a < lo || b > hi || a > b {
            return Err(format!("{name}: {part:?} is outside {lo}-{hi}"));
        }
        out.extend((a..=b).step_by(step as usize));
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

impl Schedule {
    pub(crate) fn parse(s: &str) -> Result<Schedule, String> {
        let s = match s.trim() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other => other,
        };
        let f: Vec<&str> = s.split_whitespace().collect();
        if f.len() != 5 {
            return Err(format!("expected 5 fields, got {}", f.len()));
        }
        let mut weekdays = field(f[4], 0, 7, "day of week")?;
        if weekdays.contains(&7) {
            weekdays.retain(|d| *d != 7);
            weekdays.push(0);
            weekdays.sort_unstable();
            weekdays.dedup();
        }
        Ok(Schedule {
            minutes: field(f[0], 0, 59, "minute")?,
            hours: field(f[1], 0, 23, "hour")?,
            days: field(f[2], 1, 31, "day of month")?,
            months: field(f[3], 1, 12, "month")?,
            weekdays,
            day_or: f[2] != "*" && f[4] != "*",
        })
    }

    /// Whether the minute starting at `t` (seconds since the epoch, UTC) is scheduled.
    pub(crate) fn matches(&self, t: i64) -> bool {
        let Ok(ts) = Timestamp::from_second(t) else {
            return false;
        };
        let dt = ts.to_zoned(k8s_openapi::jiff::tz::TimeZone::UTC).datetime();
        let day = self.days.contains(&(dt.day() as u32));
        let wday = self
            .weekdays
            .contains(&(dt.weekday().to_sunday_zero_offset() as u32));
        let day_ok = if self.day_or {
            day || wday
        } else {
            day && wday
        };
        self.minutes.contains(&(dt.minute() as u32))
            && self.hours.contains(&(dt.hour() as u32))
            && self.months.contains(&(dt.month() as u32))
            && day_ok
    }

    /// The first scheduled minute after `after`, within a year.
    pub(crate) fn next_after(&self, after: i64) -> Option<i64> {
        let mut t = (after / 60 + 1) * 60;
        for _ in 0..(366 * 24 * 60) {
            if self.matches(t) {
                return Some(t);
            }
            t += 60;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_parse_and_match_as_cron() {
        // 2026-11-26T10:15:00Z is a Thursday.
        let at = |s: &str| {
            "2026-11-26T10:15:00Z"
                .parse::<Timestamp>()
                .unwrap()
                .as_second()
                + s.parse::<i64>().unwrap()
        };
        for (sched, offset, want) in [
            ("* * * * *", "0", true),
            ("15 10 * * *", "0", true),
            ("*/5 * * * *", "0", true),
            ("*/7 * * * *", "0", false),
            ("0-20/15 10 * * *", "0", true),
            ("15 10 * * 4", "0", true),
            ("15 10 * * 1-3", "0", false),
            ("15 10 1 * 4", "0", true),
            ("15 10 26 11 *", "0", true),
            ("@hourly", "2700", true),
        ] {
            let s = Schedule::parse(sched).unwrap();
            assert_eq!(s.matches(at(offset)), want, "{sched}");
        }
        for bad in ["* * * *", "61 * * * *", "*/0 * * * *", "a * * * *"] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
        let s = Schedule::parse("30 * * * *").unwrap();
        assert_eq!(s.next_after(at("0")), Some(at("900")));
    }
}
