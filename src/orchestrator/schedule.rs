//! Cron schedules in a time zone. Expressions are crontab's five fields
//! (minute hour day-of-month month day-of-week, Sunday = 0 or 7) or six with
//! seconds first; fire times are computed in the pipeline's zone, so
//! `0 3 * * *` in `Europe/Berlin` fires at 03:00 local across DST changes.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// A parsed schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    expression: String,
    zone: Tz,
    cron: cron::Schedule,
}

impl Schedule {
    /// Parse `expression` in the IANA zone `zone`; the error says what is
    /// wrong in words a crontab user knows.
    pub fn parse(expression: &str, zone: &str) -> Result<Schedule, String> {
        let zone: Tz = zone.parse().map_err(|_| {
            format!("time zone {zone:?} is not an IANA name (like UTC or Europe/Berlin)")
        })?;
        let fields: Vec<&str> = expression.split_whitespace().collect();
        let (seconds, rest) = match fields.len() {
            5 => ("0", &fields[..]),
            6 => (fields[0], &fields[1..]),
            n => {
                return Err(format!(
                    "schedule {expression:?} has {n} fields; give 5 (minute hour day month \
                     weekday) or 6 (seconds first)"
                ));
            }
        };
        let weekday = crontab_weekdays(rest[4])
            .map_err(|e| format!("schedule {expression:?}: day of week {e}"))?;
        let full = format!(
            "{seconds} {} {} {} {} {weekday}",
            rest[0], rest[1], rest[2], rest[3]
        );
        let cron = cron::Schedule::from_str(&full)
            .map_err(|e| format!("schedule {expression:?} is not a cron expression: {e}"))?;
        if cron.upcoming(zone).next().is_none() {
            return Err(format!("schedule {expression:?} never fires"));
        }
        Ok(Schedule {
            expression: expression.trim().to_string(),
            zone,
            cron,
        })
    }

    pub fn expression(&self) -> &str {
        &self.expression
    }

    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// The first fire time strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .after(&t.with_timezone(&self.zone))
            .next()
            .map(|f| f.with_timezone(&Utc))
    }

    /// Fire times in `(from, to]`, oldest first.
    pub fn fires_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        self.cron
            .after(&from.with_timezone(&self.zone))
            .map(|f| f.with_timezone(&Utc))
            .take_while(|f| *f <= to)
            .collect()
    }
}

/// crontab's day-of-week field (0-7, Sunday = 0 or 7) in the cron crate's
/// numbering (1-7, Sunday = 1). Names, `*` and `?` pass unchanged.
fn crontab_weekdays(field: &str) -> Result<String, String> {
    let map = |n: &str| -> Result<u32, String> {
        let day: u32 = n.parse().map_err(|_| format!("{n:?} is not a day"))?;
        if day > 7 {
            return Err(format!("{day} is not a day (0-7, Sunday = 0 or 7)"));
        }
        Ok(day % 7 + 1)
    };
    let mut out = Vec::new();
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (range, Some(step)),
            None => (item, None),
        };
        if range.is_empty() || !range.starts_with(|c: char| c.is_ascii_digit()) {
            out.push(item.to_string());
            continue;
        }
        let converted = match range.split_once('-') {
            None => map(range)?.to_string(),
            Some((a, b)) => {
                let (start, end) = (map(a)?, map(b)?);
                if start <= end {
                    format!("{start}-{end}")
                } else if step.is_none() {
                    // 5-7 (Friday to Sunday) wraps past the cron crate's end.
                    format!("{start}-7,1-{end}")
                } else {
                    return Err(format!(
                        "{item:?} wraps past Sunday; use names like FRI-SUN"
                    ));
                }
            }
        };
        out.push(match step {
            Some(step) => format!("{converted}/{step}"),
            None => converted,
        });
    }
    Ok(out.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn five_fields_are_crontab_with_sunday_zero() {
        let s = Schedule::parse("30 4 * * 0", "UTC").unwrap();
        // 2026-11-21 is a Saturday.
        assert_eq!(
            s.next_after(at("2026-11-21T12:00:00Z")),
            Some(at("2026-11-22T04:30:00Z"))
        );
        let weekdays = Schedule::parse("0 9 * * 1-5", "UTC").unwrap();
        assert_eq!(
            weekdays.next_after(at("2026-11-21T12:00:00Z")),
            Some(at("2026-11-23T09:00:00Z")),
            "Monday"
        );
        let weekend = Schedule::parse("0 9 * * 6-7", "UTC").unwrap();
        assert_eq!(
            weekend.fires_between(at("2026-11-20T00:00:00Z"), at("2026-11-24T00:00:00Z")),
            vec![at("2026-11-21T09:00:00Z"), at("2026-11-22T09:00:00Z")]
        );
        let wrap = Schedule::parse("0 9 * * 5-0", "UTC").unwrap();
        assert_eq!(
            wrap.fires_between(at("2026-11-19T00:00:00Z"), at("2026-11-24T00:00:00Z"))
                .len(),
            3,
            "Friday, Saturday, Sunday"
        );
    }

    #[test]
    fn six_fields_take_seconds_first() {
        let s = Schedule::parse("*/15 * * * * *", "UTC").unwrap();
        assert_eq!(
            s.next_after(at("2026-11-21T12:00:07Z")),
            Some(at("2026-11-21T12:00:15Z"))
        );
    }

    #[test]
    fn local_time_holds_across_daylight_saving() {
        let s = Schedule::parse("0 3 * * *", "Europe/Berlin").unwrap();
        // Before and after the switch on 2026-10-25: 03:00 local is 01:00
        // then 02:00 UTC.
        let fires = s.fires_between(at("2026-10-23T12:00:00Z"), at("2026-10-26T12:00:00Z"));
        assert_eq!(
            fires,
            vec![
                at("2026-10-24T01:00:00Z"),
                at("2026-10-25T02:00:00Z"),
                at("2026-10-26T02:00:00Z")
            ]
        );
        let berlin = chrono_tz::Europe::Berlin;
        assert_eq!(
            fires[2].with_timezone(&berlin),
            berlin.with_ymd_and_hms(2026, 10, 26, 3, 0, 0).unwrap()
        );
    }

    #[test]
    fn bad_expressions_say_what_is_wrong() {
        for (expr, zone, needle) in [
            ("0 3 * *", "UTC", "has 4 fields"),
            ("0 25 * * *", "UTC", "not a cron expression"),
            ("0 3 * * 9", "UTC", "9 is not a day"),
            ("0 3 * * *", "Mars/Olympus", "not an IANA name"),
            ("0 0 30 2 *", "UTC", "never fires"),
        ] {
            let err = Schedule::parse(expr, zone).unwrap_err();
            assert!(err.contains(needle), "{expr}: {err}");
        }
    }
}
