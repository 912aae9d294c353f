//! Resource quantities ("100m", "1Gi", "1e3"): as plain numbers (in the base unit, or in
//! thousandths for cpu) where a count is all that is needed, and as [`Quantity`], which
//! also keeps its notation and prints back in Kubernetes' canonical form.

mod canonical;

pub use canonical::{Format, Quantity, QuantityError};

/// A quantity in its base unit, rounded up ("1Gi", "500M", "1e3", "0.5").
pub fn parse(s: &str) -> Option<i64> {
    let q: Quantity = s.trim().parse().ok()?;
    i64::try_from(q.value()).ok()
}

/// A quantity in thousandths ("100m" → 100, "2" → 2000).
pub fn parse_milli(s: &str) -> Option<i64> {
    let q: Quantity = s.trim().parse().ok()?;
    i64::try_from(q.milli()).ok()
}

/// Whether `resource` (as a quota or a limit names it) is counted in thousandths.
pub fn is_milli(resource: &str) -> bool {
    matches!(resource, "cpu" | "requests.cpu" | "limits.cpu")
}

/// `value` of `resource` in the unit [`is_milli`] says ("100m" → 100 for cpu).
pub fn parse_for(resource: &str, value: &str) -> Option<i64> {
    if is_milli(resource) {
        parse_milli(value)
    } else {
        parse(value)
    }
}

/// An amount of `resource` written as Kubernetes writes it: whole cores or millicores,
/// and other amounts with the largest binary suffix that divides them exactly.
pub fn format_for(resource: &str, amount: i64) -> String {
    if is_milli(resource) {
        return if amount % 1000 == 0 {
            (amount / 1000).to_string()
        } else {
            format!("{amount}m")
        };
    }
    for (suffix, unit) in [
        ("Ei", 1i64 << 60),
        ("Pi", 1 << 50),
        ("Ti", 1 << 40),
        ("Gi", 1 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
    ] {
        if amount != 0 && amount % unit == 0 {
            return format!("{}{suffix}", amount / unit);
        }
    }
    amount.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_as_kubernetes_writes() {
        assert_eq!(parse_milli("100m"), Some(100));
        assert_eq!(parse_milli("2"), Some(2000));
        assert_eq!(parse_milli("0.5"), Some(500));
        assert_eq!(parse("1Gi"), Some(1 << 30));
        assert_eq!(parse("500M"), Some(500_000_000));
        assert_eq!(parse("1e3"), Some(1000));
        assert_eq!(parse("12x"), None);
        assert_eq!(format_for("cpu", 1500), "1500m");
        assert_eq!(format_for("requests.cpu", 2000), "2");
        assert_eq!(format_for("memory", 512 << 20), "512Mi");
        assert_eq!(format_for("pods", 10), "10");
        assert_eq!(format_for("pods", 0), "0");
        for (r, s) in [
            ("limits.cpu", "250m"),
            ("requests.memory", "3Gi"),
            ("pods", "7"),
        ] {
            assert_eq!(format_for(r, parse_for(r, s).unwrap()), s);
        }
    }
}
