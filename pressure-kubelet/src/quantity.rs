//! Kubernetes resource quantities (`128Mi`, `1.5G`, `250m`, `1e3`), parsed exactly.
//!
//! Grammar from `k8s.io/apimachinery/pkg/api/resource/quantity.go`: a signed decimal number followed by
//! a binary SI suffix (`Ki Mi Gi Ti Pi Ei`), a decimal SI suffix (`n u m "" k M G T P E`) or a decimal
//! exponent (`e3`, `E-2`). Values keep the digits as written, so `0.1Gi` or `1.5e3` convert without float
//! rounding; conversions round up like `Quantity.Value()` does.

use std::fmt;
use std::str::FromStr;

use crate::KubeletError;

/// A parsed quantity: `sign * mantissa * 10^pow10 * 2^pow2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    negative: bool,
    mantissa: u128,
    pow10: i32,
    pow2: u32,
}

fn err(input: &str, reason: &str) -> KubeletError {
    KubeletError::Quantity {
        input: input.to_owned(),
        reason: reason.to_owned(),
    }
}

impl FromStr for Quantity {
    type Err = KubeletError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let s = input.trim();
        let (negative, rest) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, suffix) = rest.split_at(num_end);
        if !number.bytes().any(|b| b.is_ascii_digit()) {
            return Err(err(input, "no digits"));
        }
        let (int, frac) = number.split_once('.').unwrap_or((number, ""));
        if frac.contains('.') {
            return Err(err(input, "more than one decimal point"));
        }
        let mut mantissa: u128 = 0;
        for b in int.bytes().chain(frac.bytes()) {
            mantissa = mantissa
                .checked_mul(10)
                .and_then(|m| m.checked_add(u128::from(b - b'0')))
                .ok_or_else(|| err(input, "too many digits"))?;
        }
        let frac_digits = i32::try_from(frac.len()).map_err(|_| err(input, "too many digits"))?;
        let (pow10, pow2) = match suffix {
            "" => (0, 0),
            "Ki" => (0, 10),
            "Mi" => (0, 20),
            "Gi" => (0, 30),
            "Ti" => (0, 40),
            "Pi" => (0, 50),
            "Ei" => (0, 60),
            "n" => (-9, 0),
            "u" => (-6, 0),
            "m" => (-3, 0),
            "k" => (3, 0),
            "M" => (6, 0),
            "G" => (9, 0),
            "T" => (12, 0),
            "P" => (15, 0),
            "E" => (18, 0),
            _ => {
                let exp = suffix
                    .strip_prefix('e')
                    .or_else(|| suffix.strip_prefix('E'))
                    .ok_or_else(|| err(input, "unknown suffix"))?;
                let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(err(input, "bad exponent"));
                }
                let e: i32 = exp
                    .parse()
                    .map_err(|_| err(input, "exponent out of range"))?;
                if e.abs() > 60 {
                    return Err(err(input, "exponent out of range"));
                }
                (e, 0)
            }
        };
        Ok(Quantity {
            negative: negative && mantissa != 0,
            mantissa,
            pow10: pow10 - frac_digits,
            pow2,
        })
    }
}

impl Quantity {
    /// `ceil(self * scale)` as an integer, `None` on overflow.
    fn scaled_ceil(&self, scale_pow10: i32) -> Option<i128> {
        let pow10 = self.pow10 + scale_pow10;
        let mut n = self.mantissa.checked_mul(1u128.checked_shl(self.pow2)?)?;
        let mut rounded_up = false;
        if pow10 >= 0 {
            n = n.checked_mul(10u128.checked_pow(pow10.unsigned_abs())?)?;
        } else {
            let d = 10u128
                .checked_pow(pow10.unsigned_abs())
                .unwrap_or(u128::MAX);
            rounded_up = n % d != 0;
            n /= d;
        }
        let n = i128::try_from(n).ok()?;
        // Round towards +infinity: up for positive values, truncation already did it for negative ones.
        Some(if self.negative {
            -n
        } else if rounded_up {
            n + 1
        } else {
            n
        })
    }

    /// The value in whole units (bytes for memory), rounded up; an error when negative or too large.
    pub fn to_bytes(&self) -> Result<u64, KubeletError> {
        let v = self
            .scaled_ceil(0)
            .ok_or_else(|| err(&self.to_string(), "too large"))?;
        u64::try_from(v).map_err(|_| {
            err(
                &self.to_string(),
                if v < 0 { "negative" } else { "too large" },
            )
        })
    }

    /// The value in thousandths (millicores for CPU), rounded up.
    pub fn to_millis(&self) -> Result<i128, KubeletError> {
        self.scaled_ceil(3)
            .ok_or_else(|| err(&self.to_string(), "too large"))
    }

    /// The value as a float (approximate).
    pub fn to_f64(&self) -> f64 {
        let v = self.mantissa as f64 * 10f64.powi(self.pow10) * 2f64.powi(self.pow2 as i32);
        if self.negative { -v } else { v }
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.negative { "-" } else { "" };
        write!(f, "{sign}{}e{}", self.mantissa, self.pow10)?;
        if self.pow2 > 0 {
            write!(f, "*2^{}", self.pow2)?;
        }
        Ok(())
    }
}

/// Parses a memory quantity to bytes (rounded up).
pub fn parse_bytes(s: &str) -> Result<u64, KubeletError> {
    s.parse::<Quantity>()?.to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_suffixes() {
        for (s, want) in [
            ("1Ki", 1u64 << 10),
            ("1Mi", 1 << 20),
            ("128Mi", 128 << 20),
            ("1Gi", 1 << 30),
            ("2Ti", 2 << 40),
            ("1Pi", 1 << 50),
            ("3Ei", 3 << 60),
        ] {
            assert_eq!(parse_bytes(s).unwrap(), want, "{s}");
        }
        assert_eq!(parse_bytes("1.5Gi").unwrap(), 1_610_612_736);
        assert_eq!(parse_bytes("0.1Gi").unwrap(), 107_374_183, "rounded up");
    }

    #[test]
    fn decimal_suffixes() {
        for (s, want) in [
            ("1", 1u64),
            ("1k", 1_000),
            ("1M", 1_000_000),
            ("1G", 1_000_000_000),
            ("1T", 1_000_000_000_000),
            ("1P", 1_000_000_000_000_000),
            ("1E", 1_000_000_000_000_000_000),
            ("129e6", 129_000_000),
            ("1.5e3", 1_500),
            ("1E3", 1_000),
            ("12E+2", 1_200),
            ("+5", 5),
        ] {
            assert_eq!(parse_bytes(s).unwrap(), want, "{s}");
        }
    }

    #[test]
    fn milli_and_smaller() {
        let q = |s: &str| s.parse::<Quantity>().unwrap();
        assert_eq!(q("250m").to_millis().unwrap(), 250);
        assert_eq!(q("0.5").to_millis().unwrap(), 500);
        assert_eq!(q("1").to_millis().unwrap(), 1_000);
        assert_eq!(q("100u").to_millis().unwrap(), 1, "rounded up");
        assert_eq!(q("5n").to_millis().unwrap(), 1);
        assert_eq!(q("1500m").to_bytes().unwrap(), 2, "Value() rounds up");
        assert_eq!(q("1e-3").to_millis().unwrap(), 1);
        assert_eq!(q("-250m").to_millis().unwrap(), -250);
        assert!((q("2.5Gi").to_f64() - 2.5 * 1024f64.powi(3)).abs() < 1.0);
    }

    #[test]
    fn rejects_garbage() {
        for s in [
            "", "Mi", "1Zi", "1.2.3", "1e", "1e+", "1ee3", "abc", "1 Mi", "1e99", "-1Gi",
        ] {
            assert!(parse_bytes(s).is_err(), "{s:?} parsed");
        }
        assert!(parse_bytes("99999999999Ei").is_err(), "overflow");
    }
}
