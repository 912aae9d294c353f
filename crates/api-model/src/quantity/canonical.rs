//! Resource quantities ("100m", "1.5Gi", "1e3") as Kubernetes reads, compares and writes
//! them: a value held in thousandths of its unit, and the notation it was written in, so
//! that it prints back in Kubernetes' canonical form ("1.5" → "1500m", "1024Mi" → "1Gi").
//!
//! Values finer than a thousandth are rounded up, away from zero, as Kubernetes rounds
//! what is finer than its own precision.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde_json::Value;

/// The notation of a quantity, which its canonical form keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Powers of ten with SI suffixes: `500m`, `2k`, `500M`.
    DecimalSi,
    /// Powers of 1024: `128Mi`, `1Gi`.
    BinarySi,
    /// Powers of ten as exponents: `1e3`.
    DecimalExponent,
}

/// Why a string is not a quantity. Not retryable as is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")]
    Format,
    #[error("unable to parse quantity's suffix")]
    Suffix,
    #[error("quantity is too large")]
    TooLarge,
}

/// A resource quantity. Equality and order compare values only: `1Gi == 1024Mi`,
/// `1 == 1000m`.
#[derive(Clone, Copy, Debug)]
pub struct Quantity {
    milli: i128,
    format: Format,
}

const DECIMAL_SUFFIXES: &[(&str, i32)] = &[
    ("n", -9),
    ("u", -6),
    ("m", -3),
    ("", 0),
    ("k", 3),
    ("M", 6),
    ("G", 9),
    ("T", 12),
    ("P", 15),
    ("E", 18),
];

const BINARY_SUFFIXES: &[&str] = &["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];

impl Quantity {
    /// `milli` thousandths of the unit, written in `format`.
    pub fn from_milli(milli: i128, format: Format) -> Self {
        Quantity { milli, format }
    }

    /// `value` units, written in `format`.
    pub fn from_value(value: i128, format: Format) -> Option<Self> {
        value
            .checked_mul(1000)
            .map(|milli| Quantity::from_milli(milli, format))
    }

    /// The value in thousandths of the unit (cpu: millicores).
    pub fn milli(&self) -> i128 {
        self.milli
    }

    /// The value in the unit, rounded up away from zero (bytes, cores).
    pub fn value(&self) -> i128 {
        let whole = self.milli / 1000;
        if self.milli % 1000 == 0 {
            whole
        } else {
            whole + self.milli.signum()
        }
    }

    pub fn format(&self) -> Format {
        self.format
    }

    pub fn is_zero(&self) -> bool {
        self.milli == 0
    }

    /// The sum, in this quantity's notation; `None` past the largest quantity.
    pub fn checked_add(&self, other: &Quantity) -> Option<Quantity> {
        let milli = self.milli.checked_add(other.milli)?;
        Some(Quantity::from_milli(milli, self.format))
    }

    /// The difference, in this quantity's notation; `None` past the largest quantity.
    pub fn checked_sub(&self, other: &Quantity) -> Option<Quantity> {
        let milli = self.milli.checked_sub(other.milli)?;
        Some(Quantity::from_milli(milli, self.format))
    }

    /// The sum, in this quantity's notation, held at the largest quantity.
    pub fn saturating_add(&self, other: &Quantity) -> Quantity {
        Quantity::from_milli(self.milli.saturating_add(other.milli), self.format)
    }

    /// The quantity a JSON field holds: a string, or a number as YAML users write `cpu: 1`.
    pub fn from_json(v: &Value) -> Result<Quantity, QuantityError> {
        match v {
            Value::String(s) => s.trim().parse(),
            Value::Number(n) => n.to_string().parse(),
            _ => Err(QuantityError::Format),
        }
    }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.milli == other.milli
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.milli.cmp(&other.milli)
    }
}

/// Splits `s` into its sign, its digits without the point, the count of digits after
/// the point, and its suffix.
fn split_number(s: &str) -> Result<(bool, String, u32, &str), QuantityError> {
    let (negative, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let end = rest
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(end);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if fraction.contains('.') || (whole.is_empty() && fraction.is_empty()) {
        return Err(QuantityError::Format);
    }
    // Trailing zeros after the point change nothing but the digits to multiply.
    let fraction = fraction.trim_end_matches('0');
    let scale = u32::try_from(fraction.len()).map_err(|_| QuantityError::TooLarge)?;
    Ok((negative, format!("{whole}{fraction}"), scale, suffix))
}

/// The base (10 or 1024), its exponent and the notation a suffix stands for.
fn suffix(s: &str) -> Result<(i32, i32, Format), QuantityError> {
    if let Some((_, e)) = DECIMAL_SUFFIXES.iter().find(|(x, _)| *x == s) {
        return Ok((10, *e, Format::DecimalSi));
    }
    if let Some(i) = BINARY_SUFFIXES.iter().position(|x| *x == s) {
        let e = i32::try_from(i).map_err(|_| QuantityError::Suffix)?;
        return Ok((1024, e, Format::BinarySi));
    }
    let Some(exp) = s.strip_prefix(['e', 'E']) else {
        return Err(QuantityError::Suffix);
    };
    let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(QuantityError::Suffix);
    }
    let e = exp.parse().map_err(|_| QuantityError::TooLarge)?;
    Ok((10, e, Format::DecimalExponent))
}

/// `n` rounded up away from zero after dividing by ten to the `shift`.
fn shift_down_ceil(n: i128, shift: u32) -> i128 {
    let Some(d) = 10i128.checked_pow(shift) else {
        return n.signum();
    };
    let q = n / d;
    if n % d == 0 {
        q
    } else {
        q + n.signum()
    }
}

impl FromStr for Quantity {
    type Err = QuantityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (negative, digits, scale, suffix_text) = split_number(s)?;
        let (base, exp, format) = suffix(suffix_text)?;
        let mut n: i128 = if digits.trim_start_matches('0').is_empty() {
            0
        } else {
            digits.parse().map_err(|_| QuantityError::TooLarge)?
        };
        if negative {
            n = -n;
        }
        // The value in thousandths is n · base^exp · 10^(3 - scale).
        let mut ten_exp = 3 - i64::from(scale);
        if base == 1024 {
            let factor = 1024i128.checked_pow(exp.unsigned_abs());
            n = factor
                .and_then(|f| n.checked_mul(f))
                .ok_or(QuantityError::TooLarge)?;
        } else {
            ten_exp += i64::from(exp);
        }
        let milli = if ten_exp >= 0 {
            let shift = u32::try_from(ten_exp).map_err(|_| QuantityError::TooLarge)?;
            10i128
                .checked_pow(shift)
                .and_then(|f| n.checked_mul(f))
                .ok_or(QuantityError::TooLarge)?
        } else {
            shift_down_ceil(n, u32::try_from(-ten_exp).unwrap_or(u32::MAX))
        };
        Ok(Quantity { milli, format })
    }
}

/// The digits and power of ten of `milli` thousandths with the power a multiple of three,
/// as large as keeps the digits whole: 1500 → (1500, -3), 2_000_000 → (2, 3).
fn decimal_parts(milli: i128) -> (i128, i32) {
    if milli == 0 {
        return (0, 0);
    }
    let (mut n, mut exp): (i128, i32) = (milli, -3);
    while n % 10 == 0 {
        n /= 10;
        exp += 1;
    }
    let r = exp.rem_euclid(3);
    // Multiplying back up never overflows: these digits held the zeros just removed.
    (n * 10i128.pow(r.unsigned_abs()), exp - r)
}

fn write_decimal(f: &mut fmt::Formatter<'_>, milli: i128, format: Format) -> fmt::Result {
    let (mut n, mut exp) = decimal_parts(milli);
    if format == Format::DecimalExponent {
        return match exp {
            0 => write!(f, "{n}"),
            e => write!(f, "{n}e{e}"),
        };
    }
    if exp > 18 {
        // Past `E` the digits carry the rest; they held these zeros before.
        n *= 10i128.pow((exp - 18).unsigned_abs());
        exp = 18;
    }
    let suffix = DECIMAL_SUFFIXES
        .iter()
        .find(|(_, e)| *e == exp)
        .map_or("", |(s, _)| s);
    write!(f, "{n}{suffix}")
}

impl fmt::Display for Quantity {
    /// Kubernetes' canonical form of the quantity.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let binary = self.format == Format::BinarySi
            && self.milli.abs() >= 1024 * 1000
            && self.milli % 1000 == 0;
        if !binary {
            // Small or fractional binary quantities read better, and exactly, in decimal.
            let format = match self.format {
                Format::BinarySi => Format::DecimalSi,
                other => other,
            };
            return write_decimal(f, self.milli, format);
        }
        let mut n = self.milli / 1000;
        let mut power = 0;
        while n % 1024 == 0 && power + 1 < BINARY_SUFFIXES.len() {
            n /= 1024;
            power += 1;
        }
        write!(f, "{n}{}", BINARY_SUFFIXES[power])
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn q(s: &str) -> Quantity {
        match s.parse() {
            Ok(q) => q,
            Err(e) => panic!("{s:?} should parse: {e}"),
        }
    }

    #[test]
    fn parses_to_thousandths() {
        let cases: &[(&str, i128)] = &[
            ("100m", 100),
            ("1", 1000),
            ("1.5", 1500),
            ("0.5", 500),
            (".5", 500),
            ("5.", 5000),
            ("+2", 2000),
            ("-250m", -250),
            ("1Gi", 1_073_741_824_000),
            ("1.5Ki", 1_536_000),
            ("500M", 500_000_000_000),
            ("2k", 2_000_000),
            ("1e3", 1_000_000),
            ("1E3", 1_000_000),
            ("1.5e3", 1_500_000),
            ("1e-3", 1),
            ("1E", 1_000_000_000_000_000_000_000),
            ("1.000000000000000000000000000000000000000", 1000),
            ("0", 0),
            ("0.0", 0),
        ];
        for (s, milli) in cases {
            assert_eq!(q(s).milli(), *milli, "{s}");
        }
    }

    #[test]
    fn finer_than_a_thousandth_rounds_up_away_from_zero() {
        assert_eq!(q("1n").milli(), 1);
        assert_eq!(q("1500u").milli(), 2);
        assert_eq!(q("-1n").milli(), -1);
        assert_eq!(q("0.0001").milli(), 1);
        assert_eq!(q("1e-40").milli(), 1);
        assert_eq!(q("1500m").value(), 2);
        assert_eq!(q("2").value(), 2);
        assert_eq!(q("-1500m").value(), -2);
    }

    #[test]
    fn notation_follows_the_suffix() {
        assert_eq!(q("1Gi").format(), Format::BinarySi);
        assert_eq!(q("1G").format(), Format::DecimalSi);
        assert_eq!(q("1").format(), Format::DecimalSi);
        assert_eq!(q("1e3").format(), Format::DecimalExponent);
    }

    #[test]
    fn rejects_what_kubernetes_rejects() {
        for s in [
            "", ".", "abc", "1.2.3", "1Qi", "1e", "1e+", "1mm", "1 Gi", "--1", "1ee3",
        ] {
            assert!(s.parse::<Quantity>().is_err(), "{s:?} should not parse");
        }
        assert_eq!("1Xi".parse::<Quantity>(), Err(QuantityError::Suffix));
        assert_eq!("x".parse::<Quantity>(), Err(QuantityError::Format));
        assert_eq!("1e99".parse::<Quantity>(), Err(QuantityError::TooLarge));
        assert_eq!(
            "999999999999999999999999999999999999999999".parse::<Quantity>(),
            Err(QuantityError::TooLarge)
        );
    }

    #[test]
    fn prints_the_canonical_form() {
        let cases = [
            ("100m", "100m"),
            ("1", "1"),
            ("1.5", "1500m"),
            ("0.1", "100m"),
            ("1000m", "1"),
            ("2000", "2k"),
            ("1500", "1500"),
            ("1Gi", "1Gi"),
            ("1024Mi", "1Gi"),
            ("1.5Gi", "1536Mi"),
            ("0.5Ki", "512"),
            ("1000Ki", "1000Ki"),
            ("500M", "500M"),
            ("0.5G", "500M"),
            ("1e3", "1e3"),
            ("1.5e3", "1500"),
            ("1e-3", "1e-3"),
            ("1e21", "1e21"),
            ("1000E", "1000E"),
            ("-100Mi", "-100Mi"),
            ("0", "0"),
            ("0Gi", "0"),
        ];
        for (input, canonical) in cases {
            assert_eq!(q(input).to_string(), canonical, "{input}");
        }
    }

    #[test]
    fn canonical_form_reads_back_as_the_same_quantity() {
        for s in [
            "100m",
            "1",
            "1.5",
            "1Gi",
            "1.5Gi",
            "500M",
            "1e3",
            "123456789n",
            "7Ei",
        ] {
            let once = q(s);
            let again = q(&once.to_string());
            assert_eq!(once, again, "{s}");
            assert_eq!(once.to_string(), again.to_string(), "{s}");
        }
    }

    #[test]
    fn compares_values_across_notations() {
        assert_eq!(q("1"), q("1000m"));
        assert_eq!(q("1Gi"), q("1024Mi"));
        assert_eq!(q("1e3"), q("1k"));
        assert!(q("1500m") > q("1"));
        assert!(q("1G") < q("1Gi"));
        assert!(q("50Mi") < q("100Mi"));
        assert!(q("-1") < q("0"));
    }

    #[test]
    fn sums_keep_the_first_notation() {
        let sum = q("128Mi").checked_add(&q("128Mi"));
        assert_eq!(sum.map(|s| s.to_string()), Some("256Mi".to_string()));
        let sum = q("1").checked_add(&q("500m"));
        assert_eq!(sum.map(|s| s.to_string()), Some("1500m".to_string()));
        let diff = q("1Gi").checked_sub(&q("512Mi"));
        assert_eq!(diff.map(|s| s.to_string()), Some("512Mi".to_string()));
        let big = Quantity::from_milli(i128::MAX, Format::DecimalSi);
        assert_eq!(big.checked_add(&q("1")), None);
        assert_eq!(big.saturating_add(&q("1")), big);
    }

    #[test]
    fn reads_json_strings_and_numbers() {
        assert_eq!(Quantity::from_json(&json!("250m")), Ok(q("250m")));
        assert_eq!(Quantity::from_json(&json!(2)), Ok(q("2")));
        assert_eq!(Quantity::from_json(&json!(0.5)), Ok(q("500m")));
        assert_eq!(
            Quantity::from_json(&json!(null)),
            Err(QuantityError::Format)
        );
    }
}
