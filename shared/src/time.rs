//! The current time in UTC, as the two texts dbtools writes: `YYYYMMDDHHMMSS` (migration
//! versions) and RFC 3339 (audit entries). Civil-from-days arithmetic, so no date crate is needed.
//! And durations as PostgreSQL's settings write them (`lock_timeout = '5s'`).

use crate::exit::{Error, Result};
use std::time::Duration;

/// Reads a duration the way PostgreSQL reads `lock_timeout`: a whole number with a unit
/// (`ms`, `s`, `min`, `h`, `d`), or a bare number of milliseconds; `0` turns the timeout off.
pub fn parse_setting(text: &str) -> Result<Duration> {
    let trimmed = text.trim();
    let digits = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits);
    let per_unit_ms: u64 = match unit.trim() {
        "" | "ms" => 1,
        "s" => 1_000,
        "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => 0,
    };
    number
        .parse::<u64>()
        .ok()
        .filter(|_| per_unit_ms > 0)
        .and_then(|n| n.checked_mul(per_unit_ms))
        .filter(|&ms| ms <= i32::MAX as u64)
        .map(Duration::from_millis)
        .ok_or_else(|| {
            Error::BadInput(format!(
                "{text:?} is not a duration: write a whole number with ms, s, min, h or d (e.g. 5s, 500ms, 1h; 0 for none), at most 24 days"
            ))
        })
}

/// A duration as a PostgreSQL setting's value (`'5000ms'`).
pub fn setting_value(duration: Duration) -> String {
    format!("'{}ms'", duration.as_millis())
}

/// Now in UTC as (year, month, day, hour, minute, second).
fn now_utc() -> (i64, i64, i64, i64, i64, i64) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, rest / 3600, rest % 3600 / 60, rest % 60)
}

/// `YYYYMMDDHHMMSS`, e.g. a new migration's version.
pub fn compact_now() -> String {
    let (y, mo, d, h, mi, s) = now_utc();
    format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}")
}

/// `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339_now() -> String {
    let (y, mo, d, h, mi, s) = now_utc();
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_name_the_same_instant_in_this_century() {
        let compact = compact_now();
        let rfc = rfc3339_now();
        assert_eq!(compact.len(), 14);
        assert!(compact.starts_with("20"));
        assert_eq!(&rfc[..4], &compact[..4]);
        assert_eq!(rfc.len(), 20);
        assert!(rfc.ends_with('Z'));
    }

    #[test]
    fn settings_read_like_postgresql() {
        assert_eq!(parse_setting("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_setting("250").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_setting("2min").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_setting("0").unwrap(), Duration::ZERO);
        for bad in ["", "s", "5 sec", "-1s", "1.5s", "30d", "5m"] {
            assert!(parse_setting(bad).is_err(), "{bad}");
        }
        assert_eq!(setting_value(Duration::from_secs(5)), "'5000ms'");
    }
}
