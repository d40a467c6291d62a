//! When a service is agreed to be available: all the time (24×7), or
//! business hours on a calendar (weekly hours in a named time zone, minus
//! holidays). Daylight saving is the time zone's: a 07:00–19:00 day is 12
//! hours of that day's clock, whatever its UTC offset.

use std::collections::BTreeSet;

use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;

/// An agreed schedule.
#[derive(Clone, Debug)]
pub enum Schedule {
    /// Every minute (24×7).
    Always,
    /// Weekly hours on a calendar.
    Calendar(Calendar),
}

/// Business hours: weekly spans of local time, minus holidays.
#[derive(Clone, Debug)]
pub struct Calendar {
    /// Its name, as services refer to it.
    pub name: String,
    /// The time zone the hours are in.
    pub tz: TimeZone,
    /// The time zone's name as written.
    pub tz_name: String,
    /// Weekly spans.
    pub hours: Vec<Span>,
    /// Whole local days off.
    pub holidays: BTreeSet<Date>,
}

/// One weekly span: on these weekdays, from `start` to `end` minutes after
/// local midnight (`end` ≤ 1440).
#[derive(Clone, Debug, PartialEq)]
pub struct Span {
    /// Monday = 0 … Sunday = 6.
    pub days: [bool; 7],
    /// Minutes after midnight.
    pub start: u16,
    /// Minutes after midnight (1440 = the end of the day).
    pub end: u16,
}

/// A schedule that cannot be used, and why.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{0}")]
pub struct ScheduleError(pub String);

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl Span {
    /// Parses `Mon-Fri 07:00-19:00`, `Sat,Sun 10:00-14:00` or
    /// `Mon 00:00-24:00`.
    pub fn parse(text: &str) -> Result<Span, ScheduleError> {
        let bad = |why: &str| {
            ScheduleError(format!(
                "{text:?}: {why}; write it like \"Mon-Fri 07:00-19:00\""
            ))
        };
        let (days_text, times) = text
            .trim()
            .split_once(' ')
            .ok_or_else(|| bad("no time range"))?;
        let mut days = [false; 7];
        for part in days_text.split(',') {
            let day = |d: &str| {
                DAYS.iter()
                    .position(|x| x.eq_ignore_ascii_case(d.trim()))
                    .ok_or_else(|| bad(&format!("{d:?} is not a day (Mon … Sun)")))
            };
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (day(a)?, day(b)?);
                    if a > b {
                        return Err(bad("a day range runs Monday to Sunday"));
                    }
                    days[a..=b].iter_mut().for_each(|d| *d = true);
                }
                None => days[day(part)?] = true,
            }
        }
        let (a, b) = times
            .trim()
            .split_once('-')
            .ok_or_else(|| bad("no time range"))?;
        let minutes = |t: &str| -> Result<u16, ScheduleError> {
            let (h, m) = t
                .trim()
                .split_once(':')
                .ok_or_else(|| bad(&format!("{t:?} is not HH:MM")))?;
            let (h, m): (u16, u16) = (
                h.parse().map_err(|_| bad(&format!("{t:?} is not HH:MM")))?,
                m.parse().map_err(|_| bad(&format!("{t:?} is not HH:MM")))?,
            );
            if m > 59 || h * 60 + m > 24 * 60 {
                return Err(bad(&format!("{t:?} is not a time of day")));
            }
            Ok(h * 60 + m)
        };
        let (start, end) = (minutes(a)?, minutes(b)?);
        if start >= end {
            return Err(bad(
                "the span ends before it starts (split a night span at midnight)",
            ));
        }
        Ok(Span { days, start, end })
    }
}

impl Calendar {
    /// A calendar from its parts as written; errors name the part.
    pub fn new(
        name: &str,
        timezone: &str,
        hours: &[String],
        holidays: &[String],
    ) -> Result<Calendar, ScheduleError> {
        let tz = TimeZone::get(timezone)
            .map_err(|e| ScheduleError(format!("timezone: {timezone:?} is not a known time zone ({e}); write an IANA name like \"Europe/London\"")))?;
        if hours.is_empty() {
            return Err(ScheduleError(
                "hours: a calendar needs at least one span, like \"Mon-Fri 07:00-19:00\"".into(),
            ));
        }
        let hours = hours
            .iter()
            .map(|h| Span::parse(h).map_err(|e| ScheduleError(format!("hours: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let holidays = holidays
            .iter()
            .map(|d| {
                d.parse::<Date>().map_err(|e| {
                    ScheduleError(format!("holidays: {d:?} is not a date YYYY-MM-DD ({e})"))
                })
            })
            .collect::<Result<BTreeSet<_>, _>>()?;
        Ok(Calendar {
            name: name.to_owned(),
            tz,
            tz_name: timezone.to_owned(),
            hours,
            holidays,
        })
    }
}

fn monday_zero(w: Weekday) -> usize {
    w.to_monday_zero_offset() as usize
}

impl Schedule {
    /// The scheduled intervals within `[from, to)` (epoch ms), sorted and
    /// merged.
    pub fn intervals(&self, from: i64, to: i64) -> Vec<(i64, i64)> {
        if from >= to {
            return Vec::new();
        }
        let cal = match self {
            Schedule::Always => return vec![(from, to)],
            Schedule::Calendar(c) => c,
        };
        let local_date = |ms: i64| {
            jiff::Timestamp::from_millisecond(ms)
                .map(|t| t.to_zoned(cal.tz.clone()).date())
                .ok()
        };
        let (Some(mut day), Some(last)) = (local_date(from), local_date(to)) else {
            return Vec::new();
        };
        let at = |day: Date, minutes: u16| -> Option<i64> {
            let (d, m) = if minutes == 1440 {
                (day.tomorrow().ok()?, 0)
            } else {
                (day, minutes)
            };
            let dt = d.at((m / 60) as i8, (m % 60) as i8, 0, 0);
            Some(
                cal.tz
                    .to_ambiguous_zoned(dt)
                    .compatible()
                    .ok()?
                    .timestamp()
                    .as_millisecond(),
            )
        };
        let mut out = Vec::new();
        loop {
            if !cal.holidays.contains(&day) {
                let wd = monday_zero(day.weekday());
                for span in cal.hours.iter().filter(|s| s.days[wd]) {
                    if let (Some(a), Some(b)) = (at(day, span.start), at(day, span.end)) {
                        let (a, b) = (a.max(from), b.min(to));
                        if a < b {
                            out.push((a, b));
                        }
                    }
                }
            }
            if day >= last {
                break;
            }
            match day.tomorrow() {
                Ok(d) => day = d,
                Err(_) => break,
            }
        }
        super::normalise(out)
    }

    /// How it is written: "24x7" or the calendar's name.
    pub fn name(&self) -> &str {
        match self {
            Schedule::Always => "24x7",
            Schedule::Calendar(c) => &c.name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn ms(text: &str) -> i64 {
        text.parse::<jiff::Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn a_week_of_24x7_is_10080_minutes() {
        let from = ms("2026-11-30T00:00:00Z");
        let week = Schedule::Always.intervals(from, from + 7 * 1440 * MIN);
        assert_eq!(super::super::total(&week) / MIN, 10_080);
    }

    #[test]
    fn business_hours_follow_the_local_clock_and_skip_holidays() {
        let cal = Calendar::new(
            "london",
            "Europe/London",
            &["Mon-Fri 07:00-19:00".into()],
            &["2026-12-25".into()],
        )
        .unwrap();
        let s = Schedule::Calendar(cal);
        // Mon 21 Dec – Sun 27 Dec 2026 (GMT): four working days of 12 h.
        let week = s.intervals(ms("2026-12-21T00:00:00Z"), ms("2026-12-28T00:00:00Z"));
        assert_eq!(super::super::total(&week) / MIN, 4 * 12 * 60);
        assert_eq!(
            week[0],
            (ms("2026-12-21T07:00:00Z"), ms("2026-12-21T19:00:00Z"))
        );
        // In summer London is UTC+1: 07:00 local is 06:00 UTC.
        let summer = s.intervals(ms("2026-07-06T00:00:00Z"), ms("2026-07-07T00:00:00Z"));
        assert_eq!(
            summer,
            [(ms("2026-07-06T06:00:00Z"), ms("2026-07-06T18:00:00Z"))]
        );
        // A window that starts mid-span is cut.
        let cut = s.intervals(ms("2026-12-21T12:00:00Z"), ms("2026-12-21T13:30:00Z"));
        assert_eq!(super::super::total(&cut) / MIN, 90);
    }

    #[test]
    fn bad_calendars_name_what_is_wrong() {
        let err = |tz: &str, hours: &[&str], holidays: &[&str]| {
            Calendar::new(
                "c",
                tz,
                &hours.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                &holidays.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            )
            .unwrap_err()
            .0
        };
        assert!(
            err("Mars/Olympus", &["Mon 09:00-17:00"], &[])
                .starts_with("timezone: \"Mars/Olympus\" is not a known time zone")
        );
        assert!(err("UTC", &["Funday 09:00-17:00"], &[]).contains("\"Funday\" is not a day"));
        assert!(err("UTC", &["Mon 17:00-09:00"], &[]).contains("ends before it starts"));
        assert!(err("UTC", &["Mon 09:00-25:00"], &[]).contains("not a time of day"));
        assert!(
            err("UTC", &["Mon 09:00-17:00"], &["25/12/2026"])
                .starts_with("holidays: \"25/12/2026\"")
        );
        assert!(err("UTC", &[], &[]).starts_with("hours:"));
        assert_eq!(
            Span::parse("Sat,Sun 10:00-24:00").unwrap(),
            Span {
                days: [false, false, false, false, false, true, true],
                start: 600,
                end: 1440
            }
        );
    }
}
