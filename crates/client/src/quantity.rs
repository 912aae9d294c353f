//! Resource quantities ("100m", "1Gi", "1e3") as numbers: in the base unit, or in
//! thousandths for cpu.

/// A quantity in its base unit, rounded up ("1Gi", "500M", "1e3", "0.5").
pub fn parse(s: &str) -> Option<i64> {
    parse_scaled(s, 1.0)
}

/// A quantity in thousandths ("100m" → 100, "2" → 2000).
pub fn parse_milli(s: &str) -> Option<i64> {
    parse_scaled(s, 1000.0)
}

fn parse_scaled(s: &str, scale: f64) -> Option<i64> {
    let s = s.trim();
    let split = s
        .find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let mult: f64 = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        _ => return None,
    };
    let n: f64 = num.parse().ok()?;
    Some((n * mult * scale).ceil() as i64)
}
