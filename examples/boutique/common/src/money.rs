//! Money as the demo's `Money` proto: a currency code, whole `units` and
//! `nanos` (billionths of a unit) of the same sign. All arithmetic is exact,
//! on integers: amounts are turned into a count of nanos (`i128`), added,
//! multiplied or converted, then split back; only a conversion rounds, once,
//! to the nearest nano.

use std::fmt;

/// Nanos in one unit.
pub const NANOS_PER_UNIT: i128 = 1_000_000_000;

/// The largest `nanos` (in absolute value) of a valid amount.
pub const MAX_NANOS: i32 = 999_999_999;

/// An amount of money.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Money {
    /// ISO 4217 code, e.g. `USD`.
    pub currency_code: String,
    /// Whole units.
    pub units: i64,
    /// Billionths of a unit, with the sign of `units`.
    pub nanos: i32,
}

/// Why money arithmetic failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoneyError {
    /// `nanos` is out of range or its sign differs from `units`'.
    Invalid {
        /// The units of the amount.
        units: i64,
        /// The nanos of the amount.
        nanos: i32,
    },
    /// Amounts in different currencies cannot be added.
    CurrencyMismatch(String, String),
    /// The result does not fit.
    Overflow,
    /// A conversion rate is not a positive decimal number.
    InvalidRate(String),
}

impl fmt::Display for MoneyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MoneyError::Invalid { units, nanos } => write!(
                f,
                "invalid amount ({units} units, {nanos} nanos): nanos must be within ±{MAX_NANOS} and have the sign of units"
            ),
            MoneyError::CurrencyMismatch(a, b) => {
                write!(f, "cannot add an amount in {a} to an amount in {b}")
            }
            MoneyError::Overflow => f.write_str("amount out of range"),
            MoneyError::InvalidRate(rate) => write!(f, "invalid conversion rate {rate:?}"),
        }
    }
}

impl std::error::Error for MoneyError {}

impl Money {
    /// `units` and `nanos` of `currency_code` (not checked: see [`Money::is_valid`]).
    pub fn new(currency_code: impl Into<String>, units: i64, nanos: i32) -> Money {
        Money {
            currency_code: currency_code.into(),
            units,
            nanos,
        }
    }

    /// Nothing, in `currency_code`.
    pub fn zero(currency_code: impl Into<String>) -> Money {
        Money::new(currency_code, 0, 0)
    }

    /// Whether `nanos` is in range and has the sign of `units`.
    pub fn is_valid(&self) -> bool {
        (-MAX_NANOS..=MAX_NANOS).contains(&self.nanos)
            && !(self.units > 0 && self.nanos < 0)
            && !(self.units < 0 && self.nanos > 0)
    }

    /// Whether the amount is below zero.
    pub fn is_negative(&self) -> bool {
        self.units < 0 || self.nanos < 0
    }

    /// `self`, if valid.
    pub fn checked(&self) -> Result<&Money, MoneyError> {
        if self.is_valid() {
            Ok(self)
        } else {
            Err(MoneyError::Invalid {
                units: self.units,
                nanos: self.nanos,
            })
        }
    }

    /// The amount as a count of nanos.
    pub fn total_nanos(&self) -> i128 {
        i128::from(self.units) * NANOS_PER_UNIT + i128::from(self.nanos)
    }

    /// `total` nanos of `currency_code`, split into units and nanos of the same sign.
    pub fn from_total_nanos(
        currency_code: impl Into<String>,
        total: i128,
    ) -> Result<Money, MoneyError> {
        let units = i64::try_from(total / NANOS_PER_UNIT).map_err(|_| MoneyError::Overflow)?;
        // |total % 1e9| < 1e9: fits in an i32, with the sign of `total`.
        let nanos = i32::try_from(total % NANOS_PER_UNIT).map_err(|_| MoneyError::Overflow)?;
        Ok(Money::new(currency_code, units, nanos))
    }

    /// `self + other`; both must be valid and in the same currency.
    pub fn checked_add(&self, other: &Money) -> Result<Money, MoneyError> {
        if self.currency_code != other.currency_code {
            return Err(MoneyError::CurrencyMismatch(
                self.currency_code.clone(),
                other.currency_code.clone(),
            ));
        }
        let total = self.checked()?.total_nanos() + other.checked()?.total_nanos();
        Money::from_total_nanos(self.currency_code.clone(), total)
    }

    /// `self × factor`; `self` must be valid.
    pub fn checked_mul(&self, factor: i64) -> Result<Money, MoneyError> {
        let total = self
            .checked()?
            .total_nanos()
            .checked_mul(i128::from(factor))
            .ok_or(MoneyError::Overflow)?;
        Money::from_total_nanos(self.currency_code.clone(), total)
    }
}

/// The symbol the storefront shows for `currency_code`, if it has one.
pub fn currency_symbol(currency_code: &str) -> Option<&'static str> {
    Some(match currency_code {
        "USD" | "CAD" => "$",
        "EUR" => "€",
        "JPY" => "¥",
        "GBP" => "£",
        "TRY" => "₺",
        _ => return None,
    })
}

/// The amount as the demo's storefront shows it: the currency's symbol (or
/// its code and a space), the units, and the cents, truncated: `$19.99`,
/// `€17.68`, `CHF 22.61`, `-$1.50`.
pub fn render(amount: &Money) -> String {
    let sign = if amount.is_negative() { "-" } else { "" };
    let cents = (amount.nanos.unsigned_abs() / 10_000_000).min(99);
    let units = amount.units.unsigned_abs();
    match currency_symbol(&amount.currency_code) {
        Some(symbol) => format!("{sign}{symbol}{units}.{cents:02}"),
        None => format!("{sign}{} {units}.{cents:02}", amount.currency_code),
    }
}

/// A conversion rate: how many units of a currency one euro buys, as an
/// exact decimal `mantissa / 10^scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    mantissa: i128,
    scale: u32,
}

impl Rate {
    /// Parses a positive decimal such as `1.1305` or `126.40` (at most 9
    /// fractional digits).
    pub fn parse(text: &str) -> Result<Rate, MoneyError> {
        let invalid = || MoneyError::InvalidRate(text.to_string());
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !digits_only(whole) || !digits_only(fraction) || fraction.len() > 9 {
            return Err(invalid());
        }
        let mut mantissa: i128 = 0;
        for byte in whole.bytes().chain(fraction.bytes()) {
            mantissa = mantissa
                .checked_mul(10)
                .and_then(|m| m.checked_add(i128::from(byte - b'0')))
                .ok_or_else(invalid)?;
        }
        if mantissa == 0 || mantissa > 1_000_000_000_000_000_000 {
            return Err(invalid());
        }
        Ok(Rate {
            mantissa,
            // At most 9: checked above.
            scale: fraction.len() as u32,
        })
    }
}

/// `amount` (in the currency whose rate is `from`) converted to `to_code`
/// (whose rate is `to`), through the euro, exactly: `amount / from × to`,
/// rounded once to the nearest nano (halves away from zero).
pub fn convert(amount: &Money, from: Rate, to: Rate, to_code: &str) -> Result<Money, MoneyError> {
    let total = amount.checked()?.total_nanos();
    let numerator = total
        .checked_mul(to.mantissa)
        .and_then(|n| n.checked_mul(10i128.pow(from.scale)))
        .ok_or(MoneyError::Overflow)?;
    let denominator = from
        .mantissa
        .checked_mul(10i128.pow(to.scale))
        .ok_or(MoneyError::Overflow)?;
    Money::from_total_nanos(to_code, divide_rounding(numerator, denominator))
}

/// `numerator / denominator` (`denominator > 0`), rounded to the nearest
/// integer, halves away from zero.
fn divide_rounding(numerator: i128, denominator: i128) -> i128 {
    let quotient = numerator / denominator;
    let remainder = numerator % denominator;
    if remainder.unsigned_abs() * 2 >= denominator.unsigned_abs() {
        quotient + numerator.signum()
    } else {
        quotient
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(units: i64, nanos: i32) -> Money {
        Money::new("USD", units, nanos)
    }

    #[test]
    fn validity() {
        assert!(usd(19, 990_000_000).is_valid());
        assert!(usd(-1, -500_000_000).is_valid());
        assert!(usd(0, -1).is_valid());
        assert!(!usd(1, -1).is_valid());
        assert!(!usd(-1, 1).is_valid());
        assert!(!usd(0, 1_000_000_000).is_valid());
        assert!(!usd(0, -1_000_000_000).is_valid());
    }

    #[test]
    fn addition_carries_nanos() {
        assert_eq!(
            usd(19, 990_000_000).checked_add(&usd(8, 990_000_000)),
            Ok(usd(28, 980_000_000))
        );
        assert_eq!(
            usd(1, 0).checked_add(&usd(-1, -500_000_000)),
            Ok(usd(0, -500_000_000))
        );
        assert_eq!(
            usd(-2, -600_000_000).checked_add(&usd(3, 100_000_000)),
            Ok(usd(0, 500_000_000))
        );
        assert_eq!(
            usd(1, 0).checked_add(&Money::new("EUR", 1, 0)),
            Err(MoneyError::CurrencyMismatch("USD".into(), "EUR".into()))
        );
        assert_eq!(
            usd(1, -1).checked_add(&usd(1, 0)),
            Err(MoneyError::Invalid {
                units: 1,
                nanos: -1
            })
        );
        assert_eq!(
            usd(i64::MAX, 0).checked_add(&usd(1, 0)),
            Err(MoneyError::Overflow)
        );
    }

    #[test]
    fn multiplication() {
        assert_eq!(
            usd(19, 990_000_000).checked_mul(3),
            Ok(usd(59, 970_000_000))
        );
        assert_eq!(usd(5, 490_000_000).checked_mul(0), Ok(usd(0, 0)));
        assert_eq!(usd(0, 333_333_334).checked_mul(3), Ok(usd(1, 2)));
        assert_eq!(usd(i64::MAX, 0).checked_mul(2), Err(MoneyError::Overflow));
    }

    #[test]
    fn rendering_truncates_to_cents() {
        assert_eq!(render(&usd(19, 990_000_000)), "$19.99");
        assert_eq!(render(&usd(8, 999_999_999)), "$8.99");
        assert_eq!(render(&usd(5, 0)), "$5.00");
        assert_eq!(render(&usd(-1, -500_000_000)), "-$1.50");
        assert_eq!(render(&usd(0, -10_000_000)), "-$0.01");
        assert_eq!(render(&Money::new("EUR", 17, 682_441_398)), "€17.68");
        assert_eq!(render(&Money::new("CHF", 22, 610_000_000)), "CHF 22.61");
    }

    #[test]
    fn rates() {
        assert_eq!(
            Rate::parse("1.1305"),
            Ok(Rate {
                mantissa: 11305,
                scale: 4
            })
        );
        assert_eq!(
            Rate::parse("126.40"),
            Ok(Rate {
                mantissa: 12640,
                scale: 2
            })
        );
        assert_eq!(
            Rate::parse("1"),
            Ok(Rate {
                mantissa: 1,
                scale: 0
            })
        );
        for bad in [
            "",
            ".5",
            "-1",
            "0",
            "0.000",
            "1.2.3",
            "1e3",
            "1.0000000001",
            "x",
        ] {
            assert!(Rate::parse(bad).is_err(), "{bad}");
        }
        assert!(Rate::parse("0.0").is_err());
    }

    #[test]
    fn conversion_is_exact_and_rounds_once() {
        let eur = Rate::parse("1.0").unwrap();
        let usd_rate = Rate::parse("1.1305").unwrap();
        let jpy = Rate::parse("126.40").unwrap();
        // 19.99 / 1.1305 = 17.682441397611...
        assert_eq!(
            convert(&usd(19, 990_000_000), usd_rate, eur, "EUR"),
            Ok(Money::new("EUR", 17, 682_441_398))
        );
        // Same currency: unchanged, to the nano.
        assert_eq!(
            convert(&usd(19, 990_000_000), usd_rate, usd_rate, "USD"),
            Ok(usd(19, 990_000_000))
        );
        // 19.99 × 126.40 / 1.1305 = 2235.0605926581...
        assert_eq!(
            convert(&usd(19, 990_000_000), usd_rate, jpy, "JPY"),
            Ok(Money::new("JPY", 2235, 60_592_658))
        );
        // Negative amounts keep units and nanos of one sign.
        assert_eq!(
            convert(&usd(-19, -990_000_000), usd_rate, eur, "EUR"),
            Ok(Money::new("EUR", -17, -682_441_398))
        );
        // Halves round away from zero: 0.000000001 EUR × 0.5 = 0.5 nano → 1.
        let half = Rate::parse("0.5").unwrap();
        assert_eq!(
            convert(&Money::new("EUR", 0, 1), eur, half, "X"),
            Ok(Money::new("X", 0, 1))
        );
        assert_eq!(
            convert(&usd(1, -1), usd_rate, eur, "EUR"),
            Err(MoneyError::Invalid {
                units: 1,
                nanos: -1
            })
        );
        assert_eq!(
            convert(
                &usd(i64::MAX, 0),
                usd_rate,
                Rate::parse("15999.40").unwrap(),
                "IDR"
            ),
            Err(MoneyError::Overflow)
        );
    }
}
