//! A small `strftime` for the `strftime_now(format)` function chat templates call
//! (Llama 3.x and Granite put today's date in the system prompt).
//!
//! Covers the C/Python directives templates use, in the C locale: `%Y %y %m %d %e %B %b %h %A
//! %a %j %H %I %M %S %p %F %D %T %%`, and glibc's `%-d`-style "no padding" flag. Unknown
//! directives are copied through unchanged, as glibc does.

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// A broken-down UTC time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DateTime {
    year: i64,
    /// 1..=12
    month: u32,
    /// 1..=31
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    /// 0 = Monday .. 6 = Sunday
    weekday: u32,
    /// 1..=366
    yday: u32,
}

impl DateTime {
    /// The UTC date and time `secs` seconds after the Unix epoch.
    pub(crate) fn from_unix(secs: i64) -> DateTime {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        // 1970-01-01 was a Thursday (index 3 with Monday = 0).
        let weekday = (days + 3).rem_euclid(7) as u32;
        let yday = (days - days_from_civil(year, 1, 1)) as u32 + 1;
        DateTime {
            year,
            month,
            day,
            hour: rem / 3600,
            minute: rem / 60 % 60,
            second: rem % 60,
            weekday,
            yday,
        }
    }

    /// The current UTC time (the epoch if the clock is before it).
    pub(crate) fn now_utc() -> DateTime {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        DateTime::from_unix(secs)
    }

    /// Formats this time with a `strftime` format string.
    pub(crate) fn format(&self, fmt: &str) -> String {
        let mut out = String::with_capacity(fmt.len() + 16);
        let mut chars = fmt.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            let no_pad = chars.peek() == Some(&'-');
            if no_pad {
                chars.next();
            }
            let Some(d) = chars.next() else {
                out.push('%');
                if no_pad {
                    out.push('-');
                }
                break;
            };
            let num = |out: &mut String, v: i64, width: usize, pad: char| {
                let s = v.to_string();
                if !no_pad {
                    for _ in s.len()..width {
                        out.push(pad);
                    }
                }
                out.push_str(&s);
            };
            match d {
                'Y' => num(&mut out, self.year, 4, '0'),
                'y' => num(&mut out, self.year.rem_euclid(100), 2, '0'),
                'C' => num(&mut out, self.year.div_euclid(100), 2, '0'),
                'm' => num(&mut out, self.month as i64, 2, '0'),
                'd' => num(&mut out, self.day as i64, 2, '0'),
                'e' => num(&mut out, self.day as i64, 2, ' '),
                'j' => num(&mut out, self.yday as i64, 3, '0'),
                'H' => num(&mut out, self.hour as i64, 2, '0'),
                'I' => num(&mut out, ((self.hour + 11) % 12 + 1) as i64, 2, '0'),
                'M' => num(&mut out, self.minute as i64, 2, '0'),
                'S' => num(&mut out, self.second as i64, 2, '0'),
                'u' => num(&mut out, self.weekday as i64 + 1, 1, '0'),
                'w' => num(&mut out, (self.weekday as i64 + 1) % 7, 1, '0'),
                'B' => out.push_str(MONTHS[self.month as usize - 1]),
                'b' | 'h' => out.push_str(&MONTHS[self.month as usize - 1][..3]),
                'A' => out.push_str(WEEKDAYS[self.weekday as usize]),
                'a' => out.push_str(&WEEKDAYS[self.weekday as usize][..3]),
                'p' => out.push_str(if self.hour < 12 { "AM" } else { "PM" }),
                'F' => out.push_str(&self.format("%Y-%m-%d")),
                'D' => out.push_str(&self.format("%m/%d/%y")),
                'T' => out.push_str(&self.format("%H:%M:%S")),
                'n' => out.push('\n'),
                't' => out.push('\t'),
                '%' => out.push('%'),
                other => {
                    out.push('%');
                    if no_pad {
                        out.push('-');
                    }
                    out.push(other);
                }
            }
        }
        out
    }
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 → (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Howard Hinnant's `days_from_civil`: (year, month, day) → days since 1970-01-01.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        // 2024-07-26 13:05:09 UTC, a Friday.
        let t = DateTime::from_unix(1_721_999_109);
        assert_eq!(t.format("%d %b %Y"), "26 Jul 2024");
        assert_eq!(t.format("%B %d, %Y"), "July 26, 2024");
        assert_eq!(
            t.format("%A %a %H:%M:%S %I%p %j"),
            "Friday Fri 13:05:09 01PM 208"
        );
        assert_eq!(t.format("%F|%-m/%-d|%e|%%|%Q"), "2024-07-26|7/26|26|%|%Q");
        let epoch = DateTime::from_unix(0);
        assert_eq!(epoch.format("%Y-%m-%d %A"), "1970-01-01 Thursday");
        let leap = DateTime::from_unix(951_782_400); // 2000-02-29
        assert_eq!(leap.format("%Y-%m-%d %j"), "2000-02-29 060");
        let before = DateTime::from_unix(-86_400);
        assert_eq!(before.format("%Y-%m-%d %a"), "1969-12-31 Wed");
    }

    #[test]
    fn round_trip_days() {
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
