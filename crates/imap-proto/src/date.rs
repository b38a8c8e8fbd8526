//! IMAP dates (RFC 3501 §9 `date`, `date-time`) and RFC 5322 `Date:` values, converted
//! to and from Unix time without a calendar crate.

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// The civil date (year, month, day) of a day number.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn month(s: &str) -> Option<u32> {
    MONTHS
        .iter()
        .position(|m| m.eq_ignore_ascii_case(s))
        .map(|i| i as u32 + 1)
}

/// Parse an IMAP search date `1-Feb-1994` (day may be two digits) to a day number.
pub fn parse_date(s: &str) -> Option<i64> {
    let mut it = s.split('-');
    let d: u32 = it.next()?.parse().ok()?;
    let m = month(it.next()?)?;
    let y: i64 = it.next()?.parse().ok()?;
    if it.next().is_some() || !(1..=31).contains(&d) || !(1..=9999).contains(&y) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

/// Parse an IMAP `date-time` (` 7-Jul-1996 02:44:25 -0700`) to Unix seconds and the zone
/// offset in seconds.
pub fn parse_date_time(s: &str) -> Option<(i64, i32)> {
    let s = s.trim_start();
    let (date, rest) = s.split_once(' ')?;
    let (time, zone) = rest.split_once(' ')?;
    let day = parse_date(date)?;
    let mut t = time.split(':');
    let h: i64 = t.next()?.parse().ok()?;
    let mi: i64 = t.next()?.parse().ok()?;
    let se: i64 = t.next()?.parse().ok()?;
    if h > 23 || mi > 59 || se > 60 || t.next().is_some() {
        return None;
    }
    let off = zone_offset(zone)?;
    Some((day * 86400 + h * 3600 + mi * 60 + se - i64::from(off), off))
}

fn zone_offset(z: &str) -> Option<i32> {
    let b = z.as_bytes();
    if b.len() != 5 || !(b[0] == b'+' || b[0] == b'-') || !b[1..].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v: i32 = z[1..].parse().ok()?;
    let secs = (v / 100) * 3600 + (v % 100) * 60;
    Some(if b[0] == b'-' { -secs } else { secs })
}

/// Format Unix seconds as an IMAP `date-time` in the given zone: `"17-Jul-1996 02:44:25 -0700"`
/// (without the quotes).
pub fn format_date_time(secs: i64, offset: i32) -> String {
    let local = secs + i64::from(offset);
    let days = local.div_euclid(86400);
    let rem = local.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    let sign = if offset < 0 { '-' } else { '+' };
    let o = offset.unsigned_abs();
    format!(
        "{d:02}-{}-{y:04} {:02}:{:02}:{:02} {sign}{:02}{:02}",
        MONTHS[(m - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        o / 3600,
        o % 3600 / 60
    )
}

/// Parse an RFC 5322 `Date:` value leniently (`Tue, 1 Jul 2003 10:52:37 +0200`, obsolete
/// zone names as +0000) to Unix seconds.
pub fn parse_rfc5322(s: &str) -> Option<i64> {
    parse_rfc5322_zoned(s).map(|(local, off)| local - i64::from(off))
}

/// An RFC 5322 date as written: the seconds of its wall-clock time (as if its zone were
/// UTC) and its zone offset in seconds. SENTBEFORE/SENTON/SENTSINCE compare the date in
/// the header's own zone (RFC 3501 §6.4.4: "disregarding time and timezone").
pub fn parse_rfc5322_zoned(s: &str) -> Option<(i64, i32)> {
    let s = match s.find(',') {
        Some(i) => &s[i + 1..],
        None => s,
    };
    let mut it = s.split_whitespace();
    let d: u32 = it.next()?.parse().ok()?;
    let m = month(it.next()?.get(..3)?)?;
    let mut y: i64 = it.next()?.parse().ok()?;
    if y < 50 {
        y += 2000;
    } else if y < 1000 {
        y += 1900;
    }
    let time = it.next()?;
    let mut t = time.split(':');
    let h: i64 = t.next()?.parse().ok()?;
    let mi: i64 = t.next()?.parse().ok()?;
    let se: i64 = t.next().map_or(Some(0), |x| x.parse().ok())?;
    let off = it.next().and_then(zone_offset).unwrap_or(0);
    if !(1..=31).contains(&d) {
        return None;
    }
    Some((
        days_from_civil(y, m, d) * 86400 + h * 3600 + mi * 60 + se,
        off,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
        assert_eq!(parse_date("1-Feb-1994"), Some(days_from_civil(1994, 2, 1)));
        assert_eq!(parse_date("1-Foo-1994"), None);
        let (t, off) = parse_date_time("17-Jul-1996 02:44:25 -0700").unwrap();
        assert_eq!(format_date_time(t, off), "17-Jul-1996 02:44:25 -0700");
        assert_eq!(format_date_time(0, 0), "01-Jan-1970 00:00:00 +0000");
        assert_eq!(
            parse_rfc5322_zoned("Mon, 07 Dec 2026 23:30:00 -0500").map(|(l, o)| (l % 86400, o)),
            Some((23 * 3600 + 30 * 60, -5 * 3600))
        );
        assert_eq!(
            parse_rfc5322("Tue, 1 Jul 2003 10:52:37 +0200"),
            Some(days_from_civil(2003, 7, 1) * 86400 + 8 * 3600 + 52 * 60 + 37)
        );
        assert!(parse_date_time("17-Jul-1996 25:44:25 -0700").is_none());
    }
}
