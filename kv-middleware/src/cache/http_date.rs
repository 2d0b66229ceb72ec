//! HTTP dates as a cache reads them (RFC 9110 §5.6.7, RFC 9111 §4.2).
//!
//! All three forms are accepted: IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the obsolete
//! RFC 850 form (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime (`Sun Nov  6 08:49:37 1994`).
//! RFC 9111 §4.2 asks a cache to match them without regard to letter case and to treat a zone
//! other than `GMT` as invalid; RFC 9110 §5.6.7 says how to read RFC 850's two-digit year
//! (more than 50 years ahead means the century before). Runs of spaces are accepted where the
//! grammar has one, as recipients are encouraged to be robust. The day name is checked to be
//! a day name, not to match the date, so a sender's wrong weekday does not void its date.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const LONG_DAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// Parses an HTTP date; `now` only decides the century of an RFC 850 two-digit year.
pub(crate) fn parse(text: &str, now: SystemTime) -> Option<SystemTime> {
    if !text.is_ascii() || text.len() > 64 {
        return None;
    }
    let lower = text.trim().to_ascii_lowercase();
    // The comma after the day name is the only punctuation between tokens.
    let (day_name, rest) = match lower.split_once(',') {
        Some((day, rest)) => (day.trim_end(), rest),
        None => match lower.split_once(' ') {
            Some((day, rest)) => (day, rest),
            None => return None,
        },
    };
    let comma = lower.contains(',');
    let tokens: Vec<&str> = rest.split_whitespace().collect();
    let civil = match (comma, tokens.as_slice()) {
        (true, [day, month, year, time, "gmt"]) if DAYS.contains(&day_name) => {
            if year.len() != 4 {
                return None;
            }
            Civil::new(number(year)?, month_number(month)?, two_digits(day)?, time)?
        }
        (true, [date, time, "gmt"]) if LONG_DAYS.contains(&day_name) => {
            let mut parts = date.split('-');
            let (Some(day), Some(month), Some(year), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return None;
            };
            if year.len() != 2 {
                return None;
            }
            let year = rfc850_year(number(year)?, now);
            Civil::new(year, month_number(month)?, two_digits(day)?, time)?
        }
        (false, [month, day, time, year]) if DAYS.contains(&day_name) => {
            if year.len() != 4 || day.is_empty() || day.len() > 2 {
                return None;
            }
            Civil::new(number(year)?, month_number(month)?, two_digits(day)?, time)?
        }
        _ => return None,
    };
    civil.to_system_time()
}

/// A date and time of day, checked to exist (seconds up to 60 for a leap second).
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    seconds_of_day: i64,
}

impl Civil {
    fn new(year: i64, month: u32, day: u32, time: &str) -> Option<Civil> {
        let mut parts = time.split(':');
        let (Some(h), Some(m), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let (h, m, s) = (two_digits(h)?, two_digits(m)?, two_digits(s)?);
        if h > 23 || m > 59 || s > 60 {
            return None;
        }
        if !(1..=9999).contains(&year) || day == 0 || day > days_in_month(year, month) {
            return None;
        }
        Some(Civil {
            year,
            month,
            day,
            seconds_of_day: i64::from(h * 3600 + m * 60 + s),
        })
    }

    fn to_system_time(&self) -> Option<SystemTime> {
        let days = days_from_civil(self.year, self.month, self.day);
        let secs = days * 86_400 + self.seconds_of_day;
        if secs >= 0 {
            UNIX_EPOCH.checked_add(Duration::from_secs(secs as u64))
        } else {
            UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs()))
        }
    }
}

/// Exactly two digits, or one (RFC 850 and IMF-fixdate fields are two; some senders drop the
/// leading zero of a day).
fn two_digits(text: &str) -> Option<u32> {
    if text.is_empty() || text.len() > 2 {
        return None;
    }
    number(text).map(|n| n as u32)
}

/// Digits only (no sign, no spaces).
fn number(text: &str) -> Option<i64> {
    if text.is_empty() || text.len() > 4 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn month_number(text: &str) -> Option<u32> {
    MONTHS
        .iter()
        .position(|m| *m == text)
        .map(|index| index as u32 + 1)
}

/// RFC 9110 §5.6.7: a two-digit year that would be more than 50 years in the future is the
/// most recent past year with those digits.
fn rfc850_year(two_digits: i64, now: SystemTime) -> i64 {
    let now_year = year_of(now);
    let century = now_year - now_year.rem_euclid(100);
    let mut year = century + two_digits;
    if year > now_year + 50 {
        year -= 100;
    } else if year <= now_year - 50 {
        // Keep within 50 years of now on the other side, too: "99" read in 2001 is 1999.
        year += 100;
        if year > now_year + 50 {
            year -= 100;
        }
    }
    year
}

fn year_of(time: SystemTime) -> i64 {
    let secs = match time.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    };
    civil_from_days(secs.div_euclid(86_400)).0
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`]: (year, month, day).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000; // 2023-11-14T22:13:20Z

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(NOW)
    }

    fn secs(text: &str) -> Option<u64> {
        parse(text, now()).map(|t| t.duration_since(UNIX_EPOCH).unwrap().as_secs())
    }

    #[test]
    fn three_forms_any_case() {
        let expected = Some(784_111_777);
        assert_eq!(secs("Sun, 06 Nov 1994 08:49:37 GMT"), expected);
        assert_eq!(secs("Sunday, 06-Nov-94 08:49:37 GMT"), expected);
        assert_eq!(secs("Sun Nov  6 08:49:37 1994"), expected);
        assert_eq!(secs("sun, 06 nov 1994 08:49:37 gmt"), expected);
        assert_eq!(secs("SUNDAY, 06-NOV-94 08:49:37 GMT"), expected);
        assert_eq!(secs("sUN nOV 6 08:49:37 1994"), expected);
        assert_eq!(secs("  Sun,  06 Nov 1994  08:49:37 GMT "), expected);
        // A wrong weekday does not void the date.
        assert_eq!(secs("Mon, 06 Nov 1994 08:49:37 GMT"), expected);
        assert_eq!(secs("Tue, 14 Nov 2023 22:13:20 GMT"), Some(NOW));
        assert_eq!(secs("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(secs("Thu, 29 Feb 2024 00:00:00 GMT"), Some(1_709_164_800));
        assert!(parse("Wed, 31 Dec 1969 23:59:59 GMT", now()).is_some());
    }

    #[test]
    fn rfc850_century() {
        // Read in 2023: "73" is 2073 (50 years ahead), "74" is 1974.
        assert_eq!(secs("Sunday, 01-Jan-73 00:00:00 GMT"), Some(3_250_454_400));
        assert_eq!(secs("Tuesday, 01-Jan-74 00:00:00 GMT"), Some(126_230_400));
        assert_eq!(secs("Monday, 01-Jan-24 00:00:00 GMT"), Some(1_704_067_200));
    }

    #[test]
    fn invalid() {
        for text in [
            "0",
            "-1",
            "",
            "never",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 06 Nov 1994 08:49:37 +0000",
            "Sun, 06 Nov 1994 08:49:37",
            "Sun, 31 Nov 1994 08:49:37 GMT",
            "Sun, 29 Feb 2023 08:49:37 GMT",
            "Sun, 06 Nov 94 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1994 08:49 GMT",
            "Sun, 06 Nov 1994 08:49:37:00 GMT",
            "Sun, +6 Nov 1994 08:49:37 GMT",
            "Xyz, 06 Nov 1994 08:49:37 GMT",
            "Sun, 06-Nov-94 08:49:37 GMT",
            "Sunday, 06 Nov 1994 08:49:37 GMT",
            "Sun Nov  6 08:49:37 94",
            "Sun Nov 6 08:49:37 1994 GMT",
            "Sun, 06 Nov 0000 08:49:37 GMT",
            "Sün, 06 Nov 1994 08:49:37 GMT",
        ] {
            assert_eq!(parse(text, now()), None, "{text:?}");
        }
    }

    #[test]
    fn civil_round_trip() {
        for days in [-800_000, -1, 0, 1, 19_675, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(year_of(now()), 2023);
    }
}
