//! Cron schedules in a time zone. Expressions are crontab's five fields
//! (minute hour day-of-month month day-of-week, Sunday = 0 or 7) or six with
//! seconds first; fire times are computed in the pipeline's zone, so
//! `0 3 * * *` in `Europe/Berlin` fires at 03:00 local across DST changes.

use std::str::FromStr;

use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use serde::Serialize;

/// One schedule interval: from a fire time up to the next one. A backfill
/// re-derives the data of each interval on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Interval {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Interval {
    /// The interval's name in task ids and state keys: its start, in UTC.
    pub fn key(&self) -> String {
        self.start.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    }
}

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
            .after(&whole_second(t).with_timezone(&self.zone))
            .next()
            .map(|f| f.with_timezone(&Utc))
    }

    /// The last fire time at or before `t`. Fire times are whole seconds, the
    /// schedule's resolution: a clock reading `12:00:04.474` is past the fire
    /// of `12:00:04`, not a fire of its own.
    pub fn at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let t = whole_second(t);
        let local = t.with_timezone(&self.zone);
        if self.cron.includes(local) {
            return Some(t);
        }
        self.cron
            .after(&local)
            .next_back()
            .map(|f| f.with_timezone(&Utc))
    }

    /// The schedule intervals that overlap `[from, to)`, oldest first: the
    /// first one starts at the last fire time at or before `from`, so every
    /// instant of the range is in exactly one interval.
    pub fn intervals(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Interval> {
        let Some(first) = self.at_or_before(from).or_else(|| self.next_after(from)) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut start = first;
        while start < to {
            let Some(end) = self.next_after(start) else {
                break;
            };
            out.push(Interval { start, end });
            start = end;
        }
        out
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

/// `t` without its fraction of a second.
fn whole_second(t: DateTime<Utc>) -> DateTime<Utc> {
    t.with_nanosecond(0)
        .expect("zero nanoseconds is a valid time")
}

/// A `--from`/`--to` bound: an RFC 3339 time, or a date in the schedule's
/// zone meaning the start of that day (`end_of_day` false) or the end of
/// it (true), so `--from 2026-11-01 --to 2026-11-03` covers three whole days.
pub fn bound(text: &str, zone: Tz, end_of_day: bool) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
        format!(
            "{text:?} is neither a date (2026-11-21) nor an RFC 3339 time (2026-11-21T03:00:00Z)"
        )
    })?;
    let day = if end_of_day {
        date.succ_opt()
            .ok_or_else(|| format!("{text:?} is too late"))?
    } else {
        date
    };
    // Midnight can fall in a daylight-saving gap: take the first instant after it.
    let local = day.and_time(NaiveTime::MIN);
    zone.from_local_datetime(&local)
        .earliest()
        .or_else(|| {
            zone.from_local_datetime(&(local + chrono::TimeDelta::hours(1)))
                .earliest()
        })
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| format!("{text:?} has no midnight in {}", zone.name()))
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
    fn fires_are_whole_seconds_whatever_the_clock_reads() {
        let every_4s = Schedule::parse("*/4 * * * * *", "UTC").unwrap();
        let fire = at("2026-11-21T12:00:04Z");
        for late_ms in [0, 1, 300, 474, 999] {
            let now = fire + chrono::TimeDelta::milliseconds(late_ms);
            assert_eq!(every_4s.at_or_before(now), Some(fire), "{late_ms} ms after");
            assert_eq!(
                every_4s.next_after(now),
                Some(at("2026-11-21T12:00:08Z")),
                "{late_ms} ms after"
            );
        }
        let before = at("2026-11-21T12:00:03.999Z");
        assert_eq!(every_4s.next_after(before), Some(fire));
        assert_eq!(
            every_4s.at_or_before(before),
            Some(at("2026-11-21T12:00:00Z"))
        );
        let daily = Schedule::parse("0 3 * * *", "UTC").unwrap();
        assert_eq!(
            daily.at_or_before(at("2026-11-21T03:00:00.250Z")),
            Some(at("2026-11-21T03:00:00Z")),
            "a run with nothing to do ends inside its fire's second"
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
    fn intervals_cover_the_range_from_the_fire_before_it() {
        let daily = Schedule::parse("0 3 * * *", "UTC").unwrap();
        let from = bound("2026-11-01", daily.zone(), false).unwrap();
        let to = bound("2026-11-03", daily.zone(), true).unwrap();
        assert_eq!(
            (from, to),
            (at("2026-11-01T00:00:00Z"), at("2026-11-04T00:00:00Z"))
        );
        let intervals = daily.intervals(from, to);
        let starts: Vec<String> = intervals.iter().map(Interval::key).collect();
        assert_eq!(
            starts,
            [
                "2026-10-31T03:00:00Z",
                "2026-11-01T03:00:00Z",
                "2026-11-02T03:00:00Z",
                "2026-11-03T03:00:00Z"
            ]
        );
        assert!(intervals.windows(2).all(|w| w[0].end == w[1].start));
        assert_eq!(intervals[3].end, at("2026-11-04T03:00:00Z"));
        // A range starting on a fire time starts there.
        let exact = daily.intervals(at("2026-11-01T03:00:00Z"), at("2026-11-01T04:00:00Z"));
        assert_eq!(exact.len(), 1);
        assert_eq!(exact[0].start, at("2026-11-01T03:00:00Z"));
        assert!(daily.intervals(to, from).is_empty(), "an empty range");
    }

    #[test]
    fn date_bounds_are_days_in_the_schedule_zone() {
        let berlin = chrono_tz::Europe::Berlin;
        assert_eq!(
            bound("2026-11-01", berlin, false).unwrap(),
            at("2026-10-31T23:00:00Z")
        );
        assert_eq!(
            bound("2026-11-01", berlin, true).unwrap(),
            at("2026-11-01T23:00:00Z")
        );
        assert_eq!(
            bound("2026-11-01T05:00:00+01:00", berlin, true).unwrap(),
            at("2026-11-01T04:00:00Z")
        );
        let err = bound("Nov 1", berlin, false).unwrap_err();
        assert!(err.contains("neither a date"), "{err}");
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
