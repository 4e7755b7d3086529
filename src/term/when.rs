//! Durations as people write them (`90s`, `15m`, `2h`, `1h30m`, `1d`), and
//! moments as they read them: local time, and how far away.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Parses `90s`, `15m`, `2h`, `1d` and sums of them such as `1h30m`; each
/// part is a whole number and a unit (s, m, h, d).
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || {
        format!(
            "`{text}` is not a duration: write a number and a unit (s, m, h or d), \
             e.g. 90s, 15m, 2h or 1h30m"
        )
    };
    let mut total: u64 = 0;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (number, tail) = rest.split_at(digits);
        let mut units = tail.chars();
        let unit = units.next().ok_or_else(invalid)?;
        let number: u64 = number.parse().map_err(|_| invalid())?;
        let seconds = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            _ => return Err(invalid()),
        };
        total = number
            .checked_mul(seconds)
            .and_then(|part| total.checked_add(part))
            .ok_or_else(invalid)?;
        rest = units.as_str();
    }
    if total == 0 {
        return Err(format!(
            "`{text}` is no time at all: give a duration above 0"
        ));
    }
    Ok(Duration::from_secs(total))
}

/// `8 h`, `15 min`, `1 h 30 min`, `90 s`: a duration, to the minute once
/// it is over two minutes.
pub(crate) fn describe_duration(duration: Duration) -> String {
    let seconds = duration.as_secs();
    if seconds < 120 {
        return format!("{seconds} s");
    }
    let minutes = seconds.div_ceil(60);
    let (days, hours, minutes) = (minutes / 1_440, minutes / 60 % 24, minutes % 60);
    let parts: Vec<String> = [(days, "d"), (hours, "h"), (minutes, "min")]
        .into_iter()
        .filter(|(count, _)| *count > 0)
        .map(|(count, unit)| format!("{count} {unit}"))
        .collect();
    parts.join(" ")
}

/// `2026-12-01 21:30 (in 7 h 59 min)`: `moment` in local time, and how long
/// until it.
pub(crate) fn describe_moment(moment: SystemTime) -> String {
    let left = moment
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    format!("{} (in {})", local_time(moment), describe_duration(left))
}

/// `YYYY-MM-DD HH:MM` in local time (UTC where the platform says nothing).
fn local_time(moment: SystemTime) -> String {
    let seconds = moment
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    #[cfg(unix)]
    {
        let time = libc::time_t::try_from(seconds).unwrap_or(libc::time_t::MAX);
        // SAFETY: an all-zero `tm` is a valid value to be overwritten.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        // SAFETY: both pointers are valid for the call; localtime_r is the
        // thread-safe form.
        if !unsafe { libc::localtime_r(&time, &mut tm) }.is_null() {
            return format!(
                "{:04}-{:02}-{:02} {:02}:{:02}",
                tm.tm_year + 1900,
                tm.tm_mon + 1,
                tm.tm_mday,
                tm.tm_hour,
                tm.tm_min
            );
        }
    }
    utc(seconds)
}

/// `YYYY-MM-DD HH:MM UTC`, from Unix seconds (Howard Hinnant's
/// days-to-civil algorithm).
fn utc(seconds: u64) -> String {
    let days = i64::try_from(seconds / 86_400).unwrap_or(0);
    let (hour, minute) = (seconds % 86_400 / 3_600, seconds % 3_600 / 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02} UTC")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_people_write_are_read() {
        for (text, seconds) in [
            ("90s", 90),
            ("15m", 900),
            ("2h", 7_200),
            ("1d", 86_400),
            ("1h30m", 5_400),
            ("1d2h3m4s", 93_784),
        ] {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_secs(seconds)),
                "{text}"
            );
        }
        for text in [
            "",
            "15",
            "m",
            "15x",
            "1.5h",
            "-1h",
            "0s",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(text).is_err(), "{text}");
        }
    }

    #[test]
    fn durations_are_told_to_the_minute() {
        assert_eq!(describe_duration(Duration::from_secs(90)), "90 s");
        assert_eq!(describe_duration(Duration::from_secs(8 * 3_600)), "8 h");
        assert_eq!(describe_duration(Duration::from_secs(5_400)), "1 h 30 min");
        assert_eq!(describe_duration(Duration::from_secs(899)), "15 min");
        assert_eq!(describe_duration(Duration::from_secs(90_000)), "1 d 1 h");
    }

    #[test]
    fn utc_dates_are_right() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc(1_796_083_200 + 3_660), "2026-12-01 01:01 UTC");
    }
}
