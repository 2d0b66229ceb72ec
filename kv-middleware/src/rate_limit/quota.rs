//! [`Quota`]: how many units per period, with what burst; parsed from `"100/min"` and friends.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// A rate: `count` units per `period`, of which up to `burst` may be spent at once.
///
/// `100 per minute` admits 100 requests at once from an idle key and then refills at 100 per
/// minute, one every 600 ms; the burst is the count unless set lower (or higher) with
/// [`with_burst`](Quota::with_burst). Quotas parse from text:
///
/// ```
/// use std::time::Duration;
/// use kv_middleware::rate_limit::Quota;
///
/// let api: Quota = "100/min".parse()?;
/// assert_eq!(api.count(), 100);
/// assert_eq!(api.period(), Duration::from_secs(60));
/// assert_eq!(api.burst(), 100);
///
/// // The same, spelled out; a multiple of a unit; a lower burst.
/// assert_eq!("100 per minute".parse::<Quota>()?, api);
/// let login: Quota = "5 per 15 minutes".parse()?;
/// assert_eq!(login.period(), Duration::from_secs(900));
/// let smooth = Quota::per_second(10)?.with_burst(2)?;
/// assert_eq!(smooth.to_string(), "10/s (burst 2)");
///
/// assert!("100/fortnight".parse::<Quota>().is_err());
/// # Ok::<(), kv_middleware::rate_limit::QuotaError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    count: u32,
    period: Duration,
    burst: u32,
}

impl Quota {
    /// `count` units per `period`, burst `count`.
    pub fn new(count: u32, period: Duration) -> Result<Self, QuotaError> {
        if count == 0 {
            return Err(QuotaError::ZeroCount);
        }
        if period.is_zero() {
            return Err(QuotaError::ZeroPeriod);
        }
        // The period must fit nanoseconds in a u64 (about 584 years).
        if period.as_nanos() > u128::from(u64::MAX) {
            return Err(QuotaError::PeriodTooLong);
        }
        Ok(Quota {
            count,
            period,
            burst: count,
        })
    }

    /// `count` per second.
    pub fn per_second(count: u32) -> Result<Self, QuotaError> {
        Self::new(count, Duration::from_secs(1))
    }

    /// `count` per minute.
    pub fn per_minute(count: u32) -> Result<Self, QuotaError> {
        Self::new(count, Duration::from_secs(60))
    }

    /// `count` per hour.
    pub fn per_hour(count: u32) -> Result<Self, QuotaError> {
        Self::new(count, Duration::from_secs(3600))
    }

    /// `count` per day.
    pub fn per_day(count: u32) -> Result<Self, QuotaError> {
        Self::new(count, Duration::from_secs(86_400))
    }

    /// The same rate with another burst: how many units an idle key may spend at once.
    pub fn with_burst(mut self, burst: u32) -> Result<Self, QuotaError> {
        if burst == 0 {
            return Err(QuotaError::ZeroBurst);
        }
        self.burst = burst;
        Ok(self)
    }

    /// Units per period.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Units an idle key may spend at once.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// The emission interval in nanoseconds: the time one unit takes to refill, rounded up so
    /// that rounding never admits more than the quota.
    pub fn interval_nanos(&self) -> u64 {
        // The period fits a u64 of nanoseconds (checked in `new`), so 64-bit arithmetic does.
        let nanos = u64::try_from(self.period.as_nanos()).unwrap_or(u64::MAX);
        // At least 1 ns; at most the period.
        nanos.div_ceil(u64::from(self.count)).max(1)
    }

    /// The period in whole seconds, rounded up (at least 1): the `w` of `RateLimit-Policy`.
    pub fn window_secs(&self) -> u64 {
        let nanos = self.period.as_nanos();
        let secs = nanos.div_ceil(NANOS_PER_SEC).max(1);
        u64::try_from(secs).unwrap_or(u64::MAX)
    }
}

impl fmt::Display for Quota {
    /// The canonical text form, which parses back to the same quota: `100/min`, `5/15min`,
    /// `10/s (burst 2)`; a period that is not whole seconds is written in milliseconds or
    /// nanoseconds (`3/1500ms`), which display only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/", self.count)?;
        let period = self.period;
        if period.subsec_nanos() == 0 {
            let secs = period.as_secs();
            let (amount, unit) = [(86_400, "d"), (3600, "h"), (60, "min"), (1, "s")]
                .into_iter()
                .find(|(unit, _)| secs % unit == 0)
                .map(|(unit, name)| (secs / unit, name))
                .unwrap_or((secs, "s"));
            if amount != 1 {
                write!(f, "{amount}")?;
            }
            f.write_str(unit)?;
        } else if period.subsec_nanos() % 1_000_000 == 0 {
            write!(f, "{}ms", period.as_millis())?;
        } else {
            write!(f, "{}ns", period.as_nanos())?;
        }
        if self.burst != self.count {
            write!(f, " (burst {})", self.burst)?;
        }
        Ok(())
    }
}

/// A quota that cannot be built or parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QuotaError {
    /// The count is zero.
    #[error("a quota must admit at least one unit per period")]
    ZeroCount,
    /// The period is zero.
    #[error("a quota's period must not be zero")]
    ZeroPeriod,
    /// The period is longer than this implementation keeps (about 584 years).
    #[error("a quota's period must be shorter than 584 years")]
    PeriodTooLong,
    /// The burst is zero.
    #[error("a quota's burst must be at least 1")]
    ZeroBurst,
    /// The text is not of the form `COUNT/UNIT` or `COUNT per UNIT`.
    #[error(
        "invalid quota {input:?}: {reason} (expected forms like \"100/min\", \"10/s\", \
         \"1000/h\", \"5 per 15 minutes\")"
    )]
    Syntax {
        /// The text as given.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The unit is not one of s, min, h, d (or their spelled-out forms).
    #[error(
        "invalid quota {input:?}: unknown unit {unit:?} (use s, sec, second, m, min, minute, \
         h, hr, hour, d or day)"
    )]
    UnknownUnit {
        /// The text as given.
        input: String,
        /// The unit found.
        unit: String,
    },
}

impl FromStr for Quota {
    type Err = QuotaError;

    /// Parses `COUNT/[N]UNIT` or `COUNT per [N] UNIT`, case-insensitively, with optional
    /// spaces: `100/min`, `10/s`, `1000/h`, `100 per minute`, `5/15min`, `5 per 15 minutes`.
    /// Units: `s`/`sec`/`second(s)`, `m`/`min`/`minute(s)`, `h`/`hr`/`hour(s)`, `d`/`day(s)`.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let syntax = |reason| QuotaError::Syntax {
            input: input.to_owned(),
            reason,
        };
        let text = input.trim().to_ascii_lowercase();
        if text.is_empty() {
            return Err(syntax("it is empty"));
        }
        let (count, rest) = if let Some((count, rest)) = text.split_once('/') {
            (count.trim(), rest.trim())
        } else if let Some((count, rest)) = text.split_once(" per ") {
            (count.trim(), rest.trim())
        } else {
            return Err(syntax(
                "it has no \"/\" or \" per \" between count and unit",
            ));
        };
        if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
            return Err(syntax("the count is not a whole number"));
        }
        let count: u32 = count
            .parse()
            .map_err(|_| syntax("the count is larger than 4294967295"))?;
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (multiple, unit) = rest.split_at(digits);
        let multiple: u64 = if multiple.is_empty() {
            1
        } else {
            multiple
                .parse()
                .map_err(|_| syntax("the period's multiple is too large"))?
        };
        let unit = unit.trim();
        if unit.is_empty() {
            return Err(syntax("the unit is missing"));
        }
        let unit_secs = match unit {
            "s" | "sec" | "secs" | "second" | "seconds" => 1,
            "m" | "min" | "mins" | "minute" | "minutes" => 60,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3600,
            "d" | "day" | "days" => 86_400,
            other => {
                return Err(QuotaError::UnknownUnit {
                    input: input.to_owned(),
                    unit: other.to_owned(),
                })
            }
        };
        let secs = multiple
            .checked_mul(unit_secs)
            .ok_or_else(|| syntax("the period is too long"))?;
        Quota::new(count, Duration::from_secs(secs))
    }
}

impl TryFrom<&str> for Quota {
    type Error = QuotaError;

    fn try_from(text: &str) -> Result<Self, Self::Error> {
        text.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(text: &str) -> Quota {
        text.parse().unwrap()
    }

    #[test]
    fn parses_the_usual_forms() {
        let minute = Duration::from_secs(60);
        assert_eq!(q("100/min"), Quota::new(100, minute).unwrap());
        assert_eq!(q("100 per minute"), Quota::new(100, minute).unwrap());
        assert_eq!(q(" 100 / MIN "), Quota::new(100, minute).unwrap());
        assert_eq!(q("100/m"), Quota::new(100, minute).unwrap());
        assert_eq!(q("10/s"), Quota::per_second(10).unwrap());
        assert_eq!(q("10 per second"), Quota::per_second(10).unwrap());
        assert_eq!(q("1000/h"), Quota::per_hour(1000).unwrap());
        assert_eq!(q("1000 per hours"), Quota::per_hour(1000).unwrap());
        assert_eq!(q("50000/day"), Quota::per_day(50_000).unwrap());
        assert_eq!(q("5/15min").period(), Duration::from_secs(900));
        assert_eq!(q("5 per 15 minutes").period(), Duration::from_secs(900));
        assert_eq!(q("1/2h").period(), Duration::from_secs(7200));
    }

    #[test]
    fn rejects_bad_quotas_with_typed_errors() {
        let syntax = |text: &str| match text.parse::<Quota>() {
            Err(QuotaError::Syntax { reason, .. }) => reason,
            other => panic!("{text:?}: {other:?}"),
        };
        assert_eq!(syntax(""), "it is empty");
        assert_eq!(
            syntax("100"),
            "it has no \"/\" or \" per \" between count and unit"
        );
        assert_eq!(syntax("abc/min"), "the count is not a whole number");
        assert_eq!(syntax("-1/min"), "the count is not a whole number");
        assert_eq!(syntax("1.5/min"), "the count is not a whole number");
        assert_eq!(
            syntax("99999999999/min"),
            "the count is larger than 4294967295"
        );
        assert_eq!(syntax("10/"), "the unit is missing");
        assert_eq!(syntax("10/15"), "the unit is missing");
        assert_eq!(
            syntax("1/99999999999999999999d"),
            "the period's multiple is too large"
        );
        assert!(matches!(
            "10/fortnight".parse::<Quota>(),
            Err(QuotaError::UnknownUnit { unit, .. }) if unit == "fortnight"
        ));
        assert_eq!("0/min".parse::<Quota>(), Err(QuotaError::ZeroCount));
        assert_eq!("5/0min".parse::<Quota>(), Err(QuotaError::ZeroPeriod));
        assert_eq!(
            Quota::per_minute(5).unwrap().with_burst(0),
            Err(QuotaError::ZeroBurst)
        );
        assert_eq!(
            Quota::new(1, Duration::from_secs(u64::MAX)),
            Err(QuotaError::PeriodTooLong)
        );
        let message = "10/fortnight".parse::<Quota>().unwrap_err().to_string();
        assert!(message.contains("unknown unit \"fortnight\""), "{message}");
    }

    #[test]
    fn displays_canonically_and_round_trips() {
        for text in [
            "100/min", "10/s", "1000/h", "5/15min", "7/d", "3/90s", "1/2h",
        ] {
            assert_eq!(q(text).to_string(), text);
            assert_eq!(q(&q(text).to_string()), q(text));
        }
        let burst = Quota::per_second(10).unwrap().with_burst(2).unwrap();
        assert_eq!(burst.to_string(), "10/s (burst 2)");
        let odd = Quota::new(3, Duration::from_millis(1500)).unwrap();
        assert_eq!(odd.to_string(), "3/1500ms");
    }

    #[test]
    fn interval_rounds_up_and_window_is_whole_seconds() {
        assert_eq!(q("100/min").interval_nanos(), 600_000_000);
        assert_eq!(q("3/s").interval_nanos(), 333_333_334);
        assert_eq!(q("100/min").window_secs(), 60);
        let odd = Quota::new(3, Duration::from_millis(1500)).unwrap();
        assert_eq!(odd.window_secs(), 2);
        let tiny = Quota::new(u32::MAX, Duration::from_nanos(1)).unwrap();
        assert_eq!(tiny.interval_nanos(), 1);
        assert_eq!(tiny.window_secs(), 1);
    }
}
