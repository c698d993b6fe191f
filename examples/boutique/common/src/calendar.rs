//! Today's date from the wall clock (`wasi:clocks/wall-clock` inside a
//! component), as (year, month), UTC.

/// The civil (year, month) of `days` days after 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
pub fn year_month(days: i64) -> (i32, i32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        i32::try_from(year).unwrap_or(i32::MAX),
        i32::try_from(month).unwrap_or(1),
    )
}

/// Today's (year, month), UTC.
pub fn today() -> (i32, i32) {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    year_month(i64::try_from(seconds / 86_400).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar() {
        assert_eq!(year_month(0), (1970, 1));
        assert_eq!(year_month(31), (1970, 2));
        assert_eq!(year_month(365), (1971, 1));
        // 2000-02-29 is day 11016; 2026-11-25 is day 20782.
        assert_eq!(year_month(11_016), (2000, 2));
        assert_eq!(year_month(20_782), (2026, 11));
        assert_eq!(year_month(-1), (1969, 12));
        let (year, month) = today();
        assert!(year >= 2024 && (1..=12).contains(&month));
    }
}
