//! Python's `datetime` and `pytz` as dbt exposes them to macros (`modules.datetime`,
//! `modules.pytz`, `run_started_at`): dates, date-times (naive or aware), timedeltas,
//! their arithmetic and comparisons, `strftime`/`strptime`/`isoformat`, and pytz zones
//! with pytz's quirks (a zone passed as `tzinfo=` means its first, local-mean-time
//! offset; `localize` picks the offset in force; offsets are rounded to minutes).
//! Rendering follows Python's `str()`, so compiled SQL matches dbt's byte for byte.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use chrono::format::{Item, StrftimeItems};
use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Timelike};
use chrono_tz::{OffsetComponents, OffsetName, Tz};
use minijinja::value::{DynObject, Kwargs, Object, ObjectRepr, Value};
use minijinja::{Error, ErrorKind, State};

fn err(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// A fixed UTC offset with the name `tzname()` reports, and the pytz zone it came
/// from (for `normalize`, `zone` and `astimezone`).
#[derive(Debug, Clone, PartialEq)]
struct TzInfo {
    offset_secs: i32,
    name: String,
    zone: Option<Tz>,
}

impl TzInfo {
    fn utc() -> Self {
        TzInfo { offset_secs: 0, name: "UTC".into(), zone: Some(Tz::UTC) }
    }

    /// pytz's offset in force at a UTC instant (rounded to whole minutes, as pytz does).
    fn at_utc(zone: Tz, utc: NaiveDateTime) -> Self {
        let off = zone.offset_from_utc_datetime(&utc);
        TzInfo {
            offset_secs: round_to_minute(off.fix().local_minus_utc()),
            name: off.abbreviation().map_or_else(|| zone.name().to_string(), str::to_string),
            zone: Some(zone),
        }
    }

    /// pytz's `localize(dt, is_dst=False)`: the offset in force at a wall-clock time;
    /// standard time when the time is ambiguous or skipped.
    fn localize(zone: Tz, local: NaiveDateTime) -> Self {
        let pick = match zone.offset_from_local_datetime(&local) {
            chrono::LocalResult::Single(o) => o,
            chrono::LocalResult::Ambiguous(a, b) => {
                if a.dst_offset().is_zero() {
                    a
                } else {
                    b
                }
            }
            chrono::LocalResult::None => zone.offset_from_utc_datetime(&(local - Duration::hours(1))),
        };
        let utc = local - Duration::seconds(i64::from(pick.fix().local_minus_utc()));
        TzInfo::at_utc(zone, utc)
    }

    /// The zone's first offset (usually local mean time): what a pytz zone means as
    /// `tzinfo=` in a constructor or `replace`.
    fn pytz_default(zone: Tz) -> Self {
        if zone == Tz::UTC {
            return TzInfo::utc();
        }
        let earliest = NaiveDate::from_ymd_opt(1800, 1, 1).and_then(|d| d.and_hms_opt(0, 0, 0)).unwrap_or_default();
        TzInfo::at_utc(zone, earliest)
    }
}

fn round_to_minute(secs: i32) -> i32 {
    (secs + 30).div_euclid(60) * 60
}

/// `+HH:MM` (`+HH:MM:SS` when needed), as Python's `str()` writes an offset.
fn offset_text(secs: i32, colon: bool) -> String {
    let sign = if secs < 0 { '-' } else { '+' };
    let a = secs.unsigned_abs();
    let (h, m, s) = (a / 3600, a % 3600 / 60, a % 60);
    let sep = if colon { ":" } else { "" };
    if s == 0 { format!("{sign}{h:02}{sep}{m:02}") } else { format!("{sign}{h:02}{sep}{m:02}{sep}{s:02}") }
}

/// A tzinfo value: a pytz zone (`pytz.timezone(name)`, `pytz.utc`) or a fixed offset
/// (`datetime.timezone.utc`, `datetime.timezone(timedelta)`).
#[derive(Debug, Clone)]
enum Zone {
    Pytz(Tz),
    Fixed(TzInfo),
}

impl Zone {
    /// What the zone means as `tzinfo=`.
    fn as_tzinfo(&self) -> TzInfo {
        match self {
            Zone::Pytz(z) => TzInfo::pytz_default(*z),
            Zone::Fixed(t) => t.clone(),
        }
    }
    /// The offset in force at a UTC instant.
    fn at_utc(&self, utc: NaiveDateTime) -> TzInfo {
        match self {
            Zone::Pytz(z) => TzInfo::at_utc(*z, utc),
            Zone::Fixed(t) => t.clone(),
        }
    }
    fn from_value(v: &Value) -> Result<Option<Zone>, Error> {
        if v.is_none() || v.is_undefined() {
            return Ok(None);
        }
        if let Some(z) = v.downcast_object_ref::<Zone>() {
            return Ok(Some(z.clone()));
        }
        if let Some(Temporal::DateTime { tz: Some(t), .. }) = v.downcast_object_ref::<Temporal>() {
            return Ok(Some(Zone::Fixed(t.clone())));
        }
        Err(err(format!("tzinfo argument must be a timezone, not {v}")))
    }
    fn name(&self) -> String {
        match self {
            Zone::Pytz(z) => z.name().to_string(),
            Zone::Fixed(t) => t.name.clone(),
        }
    }
}

impl Object for Zone {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str()? {
            "zone" => Some(Value::from(self.name())),
            _ => None,
        }
    }
    fn call_method(self: &Arc<Self>, _state: &mut State<'_, '_>, method: &str, args: &[Value]) -> Result<Value, Error> {
        let a = Args::parse(method, args, &["dt", "is_dst"])?;
        let dt = a.temporal(0)?;
        match (method, dt) {
            ("localize", Temporal::DateTime { local, tz: None }) => {
                let tz = match &**self {
                    Zone::Pytz(z) => TzInfo::localize(*z, local),
                    Zone::Fixed(t) => t.clone(),
                };
                Ok(Temporal::DateTime { local, tz: Some(tz) }.into())
            }
            ("localize", _) => Err(err("Not naive datetime (tzinfo is already set)")),
            ("normalize", Temporal::DateTime { local, tz: Some(t) }) => {
                let utc = local - Duration::seconds(i64::from(t.offset_secs));
                let tz = self.at_utc(utc);
                Ok(Temporal::DateTime { local: utc + Duration::seconds(i64::from(tz.offset_secs)), tz: Some(tz) }.into())
            }
            ("normalize", _) => Err(err("Naive time - no tzinfo set")),
            ("utcoffset", Temporal::DateTime { local, .. }) => {
                let tz = match &**self {
                    Zone::Pytz(z) => TzInfo::localize(*z, local),
                    Zone::Fixed(t) => t.clone(),
                };
                Ok(Temporal::Delta(i64::from(tz.offset_secs) * 1_000_000).into())
            }
            _ => Err(Error::new(ErrorKind::UnknownMethod, format!("timezone has no method `{method}`"))),
        }
    }
    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// A `datetime.date`, `datetime.datetime` or `datetime.timedelta` value.
#[derive(Debug, Clone)]
enum Temporal {
    Date(NaiveDate),
    DateTime {
        local: NaiveDateTime,
        tz: Option<TzInfo>,
    },
    /// Microseconds.
    Delta(i64),
}

impl From<Temporal> for Value {
    fn from(t: Temporal) -> Value {
        Value::from_object(t)
    }
}

impl Temporal {
    fn naive_utc(local: NaiveDateTime, tz: &Option<TzInfo>) -> NaiveDateTime {
        local - Duration::seconds(i64::from(tz.as_ref().map_or(0, |t| t.offset_secs)))
    }

    fn strftime(&self, fmt: &str) -> Result<String, Error> {
        let (dt, tz) = match self {
            Temporal::Date(d) => (d.and_time(NaiveTime::MIN), None),
            Temporal::DateTime { local, tz } => (*local, tz.as_ref()),
            Temporal::Delta(_) => return Err(err("timedelta has no strftime")),
        };
        // Python's %f (microseconds), %z and %Z (empty when naive) differ from chrono's.
        let mut pattern = String::with_capacity(fmt.len());
        let mut chars = fmt.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '%' {
                pattern.push(c);
                continue;
            }
            match chars.next() {
                Some('f') => pattern.push_str(&format!("{:06}", dt.nanosecond() / 1000)),
                Some('z') => pattern.push_str(&tz.map(|t| offset_text(t.offset_secs, false)).unwrap_or_default()),
                Some('Z') => pattern.push_str(&tz.map(|t| t.name.clone()).unwrap_or_default()),
                Some(n) => {
                    pattern.push('%');
                    pattern.push(n);
                }
                None => pattern.push('%'),
            }
        }
        let items: Vec<Item<'_>> = StrftimeItems::new(&pattern).collect();
        if items.iter().any(|i| matches!(i, Item::Error)) {
            return Err(err(format!("strftime: invalid format string {fmt:?}")));
        }
        Ok(dt.format_with_items(items.into_iter()).to_string())
    }

    fn isoformat(&self, sep: &str) -> String {
        match self {
            Temporal::Date(d) => d.format("%Y-%m-%d").to_string(),
            Temporal::DateTime { local, tz } => {
                let micros = local.nanosecond() / 1000;
                let mut s = local.format(&format!("%Y-%m-%d{sep}%H:%M:%S")).to_string();
                if micros != 0 {
                    s.push_str(&format!(".{micros:06}"));
                }
                if let Some(t) = tz {
                    s.push_str(&offset_text(t.offset_secs, true));
                }
                s
            }
            Temporal::Delta(us) => delta_text(*us),
        }
    }

    fn date(&self) -> Option<NaiveDate> {
        match self {
            Temporal::Date(d) => Some(*d),
            Temporal::DateTime { local, .. } => Some(local.date()),
            Temporal::Delta(_) => None,
        }
    }

    fn replace(&self, a: &Args) -> Result<Temporal, Error> {
        let d = self.date().ok_or_else(|| err("timedelta has no replace"))?;
        let year = a.int_or(0, i64::from(d.year()))?;
        let month = a.int_or(1, i64::from(d.month()))?;
        let day = a.int_or(2, i64::from(d.day()))?;
        match self {
            Temporal::Date(_) => Ok(Temporal::Date(make_date(year, month, day)?)),
            Temporal::DateTime { local, tz } => {
                let tz = match a.get(7) {
                    Some(v) => Zone::from_value(&v)?.map(|z| z.as_tzinfo()),
                    None => tz.clone(),
                };
                let local = make_datetime(
                    year,
                    month,
                    day,
                    a.int_or(3, i64::from(local.hour()))?,
                    a.int_or(4, i64::from(local.minute()))?,
                    a.int_or(5, i64::from(local.second()))?,
                    a.int_or(6, i64::from(local.nanosecond() / 1000))?,
                )?;
                Ok(Temporal::DateTime { local, tz })
            }
            Temporal::Delta(_) => unreachable!("checked above"),
        }
    }

    fn add_delta(&self, us: i64) -> Result<Temporal, Error> {
        let overflow = || err("date value out of range");
        Ok(match self {
            // Python adds only the whole days of a timedelta to a date.
            Temporal::Date(d) => Temporal::Date(d.checked_add_signed(Duration::days(us.div_euclid(MICROS_PER_DAY))).ok_or_else(overflow)?),
            Temporal::DateTime { local, tz } => {
                Temporal::DateTime { local: local.checked_add_signed(Duration::microseconds(us)).ok_or_else(overflow)?, tz: tz.clone() }
            }
            Temporal::Delta(a) => Temporal::Delta(a.checked_add(us).ok_or_else(overflow)?),
        })
    }

    fn sub(&self, other: &Temporal) -> Result<Temporal, Error> {
        let micros = |d: Duration| d.num_microseconds().ok_or_else(|| err("timedelta out of range"));
        match (self, other) {
            (_, Temporal::Delta(us)) => self.add_delta(-us),
            (Temporal::Date(a), Temporal::Date(b)) => Ok(Temporal::Delta(micros(*a - *b)?)),
            (Temporal::DateTime { local: a, tz: ta }, Temporal::DateTime { local: b, tz: tb }) => {
                if ta.is_some() != tb.is_some() {
                    return Err(err("can't subtract offset-naive and offset-aware datetimes"));
                }
                Ok(Temporal::Delta(micros(Self::naive_utc(*a, ta) - Self::naive_utc(*b, tb))?))
            }
            _ => Err(err(format!("unsupported operand type(s) for -: '{}' and '{}'", self.type_name(), other.type_name()))),
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Temporal::Date(_) => "datetime.date",
            Temporal::DateTime { .. } => "datetime.datetime",
            Temporal::Delta(_) => "datetime.timedelta",
        }
    }
}

/// Python's `str(timedelta)`: `[-]D day[s], H:MM:SS[.ffffff]`.
fn delta_text(us: i64) -> String {
    let days = us.div_euclid(MICROS_PER_DAY);
    let rest = us.rem_euclid(MICROS_PER_DAY);
    let (secs, micros) = (rest / 1_000_000, rest % 1_000_000);
    let mut s = String::new();
    if days != 0 {
        s.push_str(&format!("{days} day{}, ", if days.abs() == 1 { "" } else { "s" }));
    }
    s.push_str(&format!("{}:{:02}:{:02}", secs / 3600, secs % 3600 / 60, secs % 60));
    if micros != 0 {
        s.push_str(&format!(".{micros:06}"));
    }
    s
}

fn make_date(y: i64, m: i64, d: i64) -> Result<NaiveDate, Error> {
    let (y, m, d) = (i32::try_from(y).ok(), u32::try_from(m).ok(), u32::try_from(d).ok());
    match (y, m, d) {
        (Some(y), Some(m), Some(d)) if (1..=9999).contains(&y) => {
            NaiveDate::from_ymd_opt(y, m, d).ok_or_else(|| err("day is out of range for month"))
        }
        _ => Err(err("year, month or day is out of range")),
    }
}

fn make_datetime(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64, us: i64) -> Result<NaiveDateTime, Error> {
    let date = make_date(y, mo, d)?;
    let part = |v: i64, max: i64, what: &str| {
        if (0..max).contains(&v) { Ok(v as u32) } else { Err(err(format!("{what} must be in 0..{}", max - 1))) }
    };
    let t = NaiveTime::from_hms_micro_opt(
        part(h, 24, "hour")?,
        part(mi, 60, "minute")?,
        part(s, 60, "second")?,
        part(us, 1_000_000, "microsecond")?,
    )
    .ok_or_else(|| err("time out of range"))?;
    Ok(date.and_time(t))
}

impl Object for Temporal {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn is_true(self: &Arc<Self>) -> bool {
        !matches!(**self, Temporal::Delta(0))
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let key = key.as_str()?;
        if let Temporal::Delta(us) = **self {
            return Some(Value::from(match key {
                "days" => us.div_euclid(MICROS_PER_DAY),
                "seconds" => us.rem_euclid(MICROS_PER_DAY) / 1_000_000,
                "microseconds" => us.rem_euclid(1_000_000),
                _ => return None,
            }));
        }
        let d = self.date()?;
        match (key, &**self) {
            ("year", _) => Some(Value::from(d.year())),
            ("month", _) => Some(Value::from(d.month())),
            ("day", _) => Some(Value::from(d.day())),
            ("hour", Temporal::DateTime { local, .. }) => Some(Value::from(local.hour())),
            ("minute", Temporal::DateTime { local, .. }) => Some(Value::from(local.minute())),
            ("second", Temporal::DateTime { local, .. }) => Some(Value::from(local.second())),
            ("microsecond", Temporal::DateTime { local, .. }) => Some(Value::from(local.nanosecond() / 1000)),
            ("tzinfo", Temporal::DateTime { tz, .. }) => Some(tz.as_ref().map_or(Value::from(()), |t| {
                Value::from_object(match t.zone {
                    Some(z) if t.name != "UTC" || z == Tz::UTC => Zone::Pytz(z),
                    _ => Zone::Fixed(t.clone()),
                })
            })),
            _ => None,
        }
    }

    fn call_method(self: &Arc<Self>, _state: &mut State<'_, '_>, method: &str, args: &[Value]) -> Result<Value, Error> {
        let unknown = || Error::new(ErrorKind::UnknownMethod, format!("{} has no method `{method}`", self.type_name()));
        if let Temporal::Delta(us) = **self {
            return match method {
                "total_seconds" => Ok(Value::from(us as f64 / 1e6)),
                _ => Err(unknown()),
            };
        }
        let d = self.date().ok_or_else(unknown)?;
        match method {
            "strftime" => {
                let a = Args::parse(method, args, &["format"])?;
                Ok(Value::from(self.strftime(&a.string(0)?)?))
            }
            "isoformat" => {
                let a = Args::parse(method, args, &["sep", "timespec"])?;
                let sep = a.get(0).map_or_else(|| "T".to_string(), |v| v.to_string());
                Ok(Value::from(self.isoformat(&sep)))
            }
            "replace" => {
                let names = ["year", "month", "day", "hour", "minute", "second", "microsecond", "tzinfo"];
                let n = if matches!(**self, Temporal::Date(_)) { 3 } else { names.len() };
                Ok(self.replace(&Args::parse(method, args, &names[..n])?)?.into())
            }
            "date" => Ok(Temporal::Date(d).into()),
            "weekday" => Ok(Value::from(d.weekday().num_days_from_monday())),
            "isoweekday" => Ok(Value::from(d.weekday().number_from_monday())),
            "isocalendar" => {
                let w = d.iso_week();
                Ok(Value::from(vec![Value::from(w.year()), Value::from(w.week()), Value::from(d.weekday().number_from_monday())]))
            }
            "toordinal" => Ok(Value::from(i64::from(d.num_days_from_ce()))),
            "ctime" => self.strftime("%a %b %e %H:%M:%S %Y").map(Value::from),
            _ => {
                let Temporal::DateTime { local, tz } = &**self else { return Err(unknown()) };
                match method {
                    "timestamp" => {
                        let utc = Self::naive_utc(*local, tz);
                        Ok(Value::from(utc.and_utc().timestamp_micros() as f64 / 1e6))
                    }
                    "utcoffset" => {
                        Ok(tz.as_ref().map_or(Value::from(()), |t| Temporal::Delta(i64::from(t.offset_secs) * 1_000_000).into()))
                    }
                    "tzname" => Ok(tz.as_ref().map_or(Value::from(()), |t| Value::from(t.name.clone()))),
                    "astimezone" => {
                        let a = Args::parse(method, args, &["tz"])?;
                        let zone = match a.get(0) {
                            Some(v) => Zone::from_value(&v)?,
                            None => None,
                        }
                        .unwrap_or(Zone::Fixed(TzInfo::utc()));
                        // A naive datetime is taken as UTC (dbt runs are UTC-based).
                        let utc = Self::naive_utc(*local, tz);
                        let t = zone.at_utc(utc);
                        Ok(Temporal::DateTime { local: utc + Duration::seconds(i64::from(t.offset_secs)), tz: Some(t) }.into())
                    }
                    "time" => Ok(Value::from(local.format("%H:%M:%S").to_string())),
                    _ => Err(unknown()),
                }
            }
        }
    }

    fn custom_cmp(self: &Arc<Self>, other: &DynObject) -> Option<Ordering> {
        let other = other.downcast_ref::<Temporal>()?;
        match (&**self, other) {
            (Temporal::Date(a), Temporal::Date(b)) => Some(a.cmp(b)),
            (Temporal::Delta(a), Temporal::Delta(b)) => Some(a.cmp(b)),
            (Temporal::DateTime { local: a, tz: ta }, Temporal::DateTime { local: b, tz: tb }) if ta.is_some() == tb.is_some() => {
                Some(Self::naive_utc(*a, ta).cmp(&Self::naive_utc(*b, tb)))
            }
            _ => None,
        }
    }

    fn binary_op(self: &Arc<Self>, op: &str, other: &Value, reflected: bool) -> Option<Result<Value, Error>> {
        let me = &**self;
        let rhs = other.downcast_object_ref::<Temporal>();
        let result = match (op, rhs) {
            ("+", Some(Temporal::Delta(us))) => me.add_delta(*us),
            ("+", Some(t)) if matches!(me, Temporal::Delta(_)) => {
                let Temporal::Delta(us) = me else { unreachable!() };
                t.add_delta(*us)
            }
            ("-", Some(t)) => {
                if reflected {
                    t.sub(me)
                } else {
                    me.sub(t)
                }
            }
            ("*", None) => {
                let Temporal::Delta(us) = me else { return None };
                if let Ok(n) = i64::try_from(other.clone()) {
                    us.checked_mul(n).map(Temporal::Delta).ok_or_else(|| err("timedelta out of range"))
                } else if let Ok(x) = f64::try_from(other.clone()) {
                    Ok(Temporal::Delta((*us as f64 * x).round_ties_even() as i64))
                } else {
                    return None;
                }
            }
            _ => return None,
        };
        Some(result.map(Value::from))
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.isoformat(" "))
    }
}

/// Positional-or-keyword arguments, as Python binds them.
struct Args {
    values: Vec<Option<Value>>,
}

impl Args {
    fn parse(func: &str, args: &[Value], names: &[&str]) -> Result<Args, Error> {
        let (pos, kw) = match args.last().map(|a| Kwargs::try_from(a.clone())) {
            Some(Ok(kw)) => (&args[..args.len() - 1], Some(kw)),
            _ => (args, None),
        };
        if pos.len() > names.len() {
            return Err(err(format!("{func}() takes at most {} arguments ({} given)", names.len(), pos.len())));
        }
        let mut values: Vec<Option<Value>> = names.iter().map(|_| None).collect();
        for (slot, v) in values.iter_mut().zip(pos) {
            *slot = Some(v.clone());
        }
        if let Some(kw) = kw {
            for (i, name) in names.iter().enumerate() {
                if let Some(v) = kw.get::<Option<Value>>(name)? {
                    if values[i].is_some() {
                        return Err(err(format!("{func}() got multiple values for argument '{name}'")));
                    }
                    values[i] = Some(v);
                }
            }
            kw.assert_all_used().map_err(|e| err(format!("{func}(): {e}")))?;
        }
        Ok(Args { values })
    }
    fn get(&self, i: usize) -> Option<Value> {
        self.values.get(i).cloned().flatten()
    }
    fn int_or(&self, i: usize, default: i64) -> Result<i64, Error> {
        match self.get(i) {
            None => Ok(default),
            Some(v) => i64::try_from(v.clone()).map_err(|_| err(format!("an integer is required (got {v})"))),
        }
    }
    fn int(&self, i: usize, what: &str) -> Result<i64, Error> {
        match self.get(i) {
            None => Err(err(format!("missing required argument '{what}'"))),
            Some(_) => self.int_or(i, 0),
        }
    }
    fn float_or(&self, i: usize) -> Result<f64, Error> {
        match self.get(i) {
            None => Ok(0.0),
            Some(v) => f64::try_from(v.clone()).map_err(|_| err(format!("a number is required (got {v})"))),
        }
    }
    fn string(&self, i: usize) -> Result<String, Error> {
        self.get(i).and_then(|v| v.as_str().map(str::to_string)).ok_or_else(|| err("a string argument is required"))
    }
    fn temporal(&self, i: usize) -> Result<Temporal, Error> {
        self.get(i).and_then(|v| v.downcast_object_ref::<Temporal>().cloned()).ok_or_else(|| err("a datetime argument is required"))
    }
}

/// `datetime.fromisoformat` (Python 3.11+ forms: date, `T` or space, fraction, offset or `Z`).
fn parse_iso(s: &str, date_only: bool) -> Result<Temporal, Error> {
    let bad = || err(format!("Invalid isoformat string: '{s}'"));
    let s = s.trim();
    let (date_part, rest) = if s.len() > 10 { (&s[..10], Some(&s[11..])) } else { (s, None) };
    let date = NaiveDate::parse_from_str(date_part, "%Y-%m-%d").map_err(|_| bad())?;
    if date_only {
        return if rest.is_none() { Ok(Temporal::Date(date)) } else { Err(bad()) };
    }
    if s.len() > 10 && !matches!(s.as_bytes()[10], b'T' | b' ') {
        return Err(bad());
    }
    let Some(rest) = rest else { return Ok(Temporal::DateTime { local: date.and_time(NaiveTime::MIN), tz: None }) };
    let (time_part, tz) = match rest.find(['+', '-', 'Z', 'z']) {
        Some(i) => {
            let off = &rest[i..];
            let secs = if off.eq_ignore_ascii_case("z") {
                0
            } else {
                let sign = if off.starts_with('-') { -1 } else { 1 };
                let digits: Vec<i32> = off[1..].split(':').map(|p| p.parse::<i32>()).collect::<Result<_, _>>().map_err(|_| bad())?;
                let (h, m, sec) =
                    (digits.first().copied().unwrap_or(0), digits.get(1).copied().unwrap_or(0), digits.get(2).copied().unwrap_or(0));
                sign * (h * 3600 + m * 60 + sec)
            };
            let name = if secs == 0 { "UTC".to_string() } else { format!("UTC{}", offset_text(secs, true)) };
            (&rest[..i], Some(TzInfo { offset_secs: secs, name, zone: None }))
        }
        None => (rest, None),
    };
    let time = ["%H:%M:%S%.f", "%H:%M", "%H"].iter().find_map(|f| NaiveTime::parse_from_str(time_part, f).ok()).ok_or_else(bad)?;
    Ok(Temporal::DateTime { local: date.and_time(time), tz })
}

/// `datetime.strptime(text, format)`.
fn strptime(text: &str, fmt: &str) -> Result<Temporal, Error> {
    let bad = |e: chrono::ParseError| err(format!("time data {text:?} does not match format {fmt:?} ({e})"));
    let chrono_fmt = fmt.replace("%f", "%6f");
    if fmt.contains("%z") {
        let dt = chrono::DateTime::parse_from_str(text, &chrono_fmt).map_err(bad)?;
        let secs = dt.offset().local_minus_utc();
        let name = if secs == 0 { "UTC".to_string() } else { format!("UTC{}", offset_text(secs, true)) };
        return Ok(Temporal::DateTime { local: dt.naive_local(), tz: Some(TzInfo { offset_secs: secs, name, zone: None }) });
    }
    match NaiveDateTime::parse_from_str(text, &chrono_fmt) {
        Ok(local) => Ok(Temporal::DateTime { local, tz: None }),
        // A format without a time of day (Python defaults it to midnight).
        Err(e) => NaiveDate::parse_from_str(text, &chrono_fmt)
            .map(|d| Temporal::DateTime { local: d.and_time(NaiveTime::MIN), tz: None })
            .map_err(|_| bad(e)),
    }
}

/// `datetime.datetime`, `datetime.date`, `datetime.timedelta` and `datetime.timezone`:
/// constructors and class methods.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Class {
    DateTime,
    Date,
    TimeDelta,
    Timezone,
}

impl Object for Class {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match (**self, key.as_str()?) {
            (Class::Timezone, "utc") => Some(Value::from_object(Zone::Fixed(TzInfo { zone: None, ..TzInfo::utc() }))),
            _ => None,
        }
    }

    fn call(self: &Arc<Self>, _state: &mut State<'_, '_>, args: &[Value]) -> Result<Value, Error> {
        match **self {
            Class::DateTime => {
                let names = ["year", "month", "day", "hour", "minute", "second", "microsecond", "tzinfo"];
                let a = Args::parse("datetime", args, &names)?;
                let local = make_datetime(
                    a.int(0, "year")?,
                    a.int(1, "month")?,
                    a.int(2, "day")?,
                    a.int_or(3, 0)?,
                    a.int_or(4, 0)?,
                    a.int_or(5, 0)?,
                    a.int_or(6, 0)?,
                )?;
                let tz = match a.get(7) {
                    Some(v) => Zone::from_value(&v)?.map(|z| z.as_tzinfo()),
                    None => None,
                };
                Ok(Temporal::DateTime { local, tz }.into())
            }
            Class::Date => {
                let a = Args::parse("date", args, &["year", "month", "day"])?;
                Ok(Temporal::Date(make_date(a.int(0, "year")?, a.int(1, "month")?, a.int(2, "day")?)?).into())
            }
            Class::TimeDelta => {
                let names = ["days", "seconds", "microseconds", "milliseconds", "minutes", "hours", "weeks"];
                let a = Args::parse("timedelta", args, &names)?;
                let scale = [MICROS_PER_DAY as f64, 1e6, 1.0, 1e3, 6e7, 3.6e9, 7.0 * MICROS_PER_DAY as f64];
                let mut us = 0f64;
                for (i, s) in scale.iter().enumerate() {
                    us += a.float_or(i)? * s;
                }
                if !us.is_finite() || us.abs() > 1e17 {
                    return Err(err("timedelta out of range"));
                }
                Ok(Temporal::Delta(us.round_ties_even() as i64).into())
            }
            Class::Timezone => {
                let a = Args::parse("timezone", args, &["offset", "name"])?;
                let Temporal::Delta(us) = a.temporal(0)? else { return Err(err("timezone() argument 1 must be a timedelta")) };
                let secs = i32::try_from(us / 1_000_000).map_err(|_| err("offset out of range"))?;
                let name = a
                    .get(1)
                    .map_or_else(|| if secs == 0 { "UTC".into() } else { format!("UTC{}", offset_text(secs, true)) }, |v| v.to_string());
                Ok(Value::from_object(Zone::Fixed(TzInfo { offset_secs: secs, name, zone: None })))
            }
        }
    }

    fn call_method(self: &Arc<Self>, _state: &mut State<'_, '_>, method: &str, args: &[Value]) -> Result<Value, Error> {
        let date_only = **self == Class::Date;
        let unknown = || Error::new(ErrorKind::UnknownMethod, format!("datetime has no method `{method}`"));
        if !matches!(**self, Class::DateTime | Class::Date) {
            return Err(unknown());
        }
        let from_local =
            |local: NaiveDateTime| if date_only { Temporal::Date(local.date()) } else { Temporal::DateTime { local, tz: None } };
        let with_zone = |utc: NaiveDateTime, zone: Option<Zone>| match zone {
            Some(z) => {
                let t = z.at_utc(utc);
                Temporal::DateTime { local: utc + Duration::seconds(i64::from(t.offset_secs)), tz: Some(t) }
            }
            None => from_local(utc + Duration::seconds(i64::from(chrono::Local::now().offset().local_minus_utc()))),
        };
        let out = match method {
            "now" => {
                let a = Args::parse(method, args, &["tz"])?;
                let zone = a.get(0).map(|v| Zone::from_value(&v)).transpose()?.flatten();
                with_zone(chrono::Utc::now().naive_utc(), zone)
            }
            "today" => with_zone(chrono::Utc::now().naive_utc(), None),
            "utcnow" => from_local(chrono::Utc::now().naive_utc()),
            "fromtimestamp" | "utcfromtimestamp" => {
                let a = Args::parse(method, args, &["timestamp", "tz"])?;
                let ts = a.float_or(0)?;
                let utc = chrono::DateTime::from_timestamp_micros((ts * 1e6).round() as i64)
                    .ok_or_else(|| err("timestamp out of range"))?
                    .naive_utc();
                if method == "utcfromtimestamp" {
                    from_local(utc)
                } else {
                    with_zone(utc, a.get(1).map(|v| Zone::from_value(&v)).transpose()?.flatten())
                }
            }
            "fromisoformat" => parse_iso(&Args::parse(method, args, &["date_string"])?.string(0)?, date_only)?,
            "strptime" if !date_only => {
                let a = Args::parse(method, args, &["date_string", "format"])?;
                strptime(&a.string(0)?, &a.string(1)?)?
            }
            "combine" if !date_only => {
                let a = Args::parse(method, args, &["date", "time", "tzinfo"])?;
                let d = a.temporal(0)?.date().ok_or_else(|| err("combine() argument 1 must be a date"))?;
                let tz = a.get(2).map(|v| Zone::from_value(&v)).transpose()?.flatten().map(|z| z.as_tzinfo());
                Temporal::DateTime { local: d.and_time(NaiveTime::MIN), tz }
            }
            _ => return Err(unknown()),
        };
        Ok(out.into())
    }
}

/// `modules.pytz`: `timezone(name)`, `utc`/`UTC`.
#[derive(Debug)]
struct PytzModule;

impl Object for PytzModule {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str()? {
            "utc" | "UTC" => Some(Value::from_object(Zone::Pytz(Tz::UTC))),
            _ => None,
        }
    }
    fn call_method(self: &Arc<Self>, _state: &mut State<'_, '_>, method: &str, args: &[Value]) -> Result<Value, Error> {
        match method {
            "timezone" => {
                let name = Args::parse(method, args, &["zone"])?.string(0)?;
                let tz: Tz = name.parse().map_err(|_| err(format!("UnknownTimeZoneError: '{name}'")))?;
                Ok(Value::from_object(Zone::Pytz(tz)))
            }
            _ => Err(Error::new(ErrorKind::UnknownMethod, format!("modules.pytz has no function `{method}`"))),
        }
    }
}

/// `run_started_at`: now, UTC, aware (dbt attaches `pytz.utc`).
pub fn run_started_at() -> Value {
    Temporal::DateTime { local: chrono::Utc::now().naive_utc(), tz: Some(TzInfo::utc()) }.into()
}

/// `modules.datetime` and `modules.pytz`.
pub fn modules() -> [(&'static str, Value); 2] {
    let datetime = [
        ("datetime", Value::from_object(Class::DateTime)),
        ("date", Value::from_object(Class::Date)),
        ("timedelta", Value::from_object(Class::TimeDelta)),
        ("timezone", Value::from_object(Class::Timezone)),
        ("MINYEAR", Value::from(1)),
        ("MAXYEAR", Value::from(9999)),
    ];
    [("datetime", Value::from(std::collections::BTreeMap::from(datetime))), ("pytz", Value::from_object(PytzModule))]
}

#[cfg(test)]
mod tests {
    use minijinja::Environment;

    fn render(src: &str) -> String {
        let mut env = Environment::new();
        for (name, module) in super::modules() {
            env.add_global(name, module);
        }
        env.render_str(src, ()).unwrap_or_else(|e| format!("error: {e:#}"))
    }

    #[test]
    fn constructors_render_like_python_str() {
        assert_eq!(render("{{ datetime.date(1997, 9, 29) }}"), "1997-09-29");
        assert_eq!(render("{{ datetime.datetime(2020, 1, 2, 3, 4, 5) }}"), "2020-01-02 03:04:05");
        assert_eq!(render("{{ datetime.datetime(2020, 1, 2, microsecond=7) }}"), "2020-01-02 00:00:00.000007");
        // pytz zones as tzinfo= mean local mean time, rounded to the minute (as dbt-date's tests show).
        assert_eq!(
            render("{{ datetime.datetime(1997, 9, 29, 6, 14, 0, tzinfo=pytz.timezone('America/Los_Angeles')) }}"),
            "1997-09-29 06:14:00-07:53"
        );
        assert_eq!(render("{{ datetime.datetime(2020, 1, 1, tzinfo=pytz.utc).isoformat() }}"), "2020-01-01T00:00:00+00:00");
        assert_eq!(render("{{ datetime.timedelta(days=1, hours=2, seconds=3.5) }}"), "1 day, 2:00:03.500000");
        assert_eq!(render("{{ datetime.timedelta(seconds=-1) }}"), "-1 day, 23:59:59");
        assert!(render("{{ datetime.date(2021, 2, 29) }}").starts_with("error"));
    }

    #[test]
    fn arithmetic_and_comparison_follow_python() {
        let src = "{% set d = datetime.datetime(2024, 3, 1, 12).replace(hour=0, minute=0) %}\
                   {{ d - datetime.timedelta(days=10) }}|{{ (d - datetime.datetime(2024, 2, 1)).days }}|\
                   {{ datetime.date(2024, 1, 31) + datetime.timedelta(days=1) }}|{{ d > datetime.datetime(2024, 2, 29) }}|\
                   {{ datetime.timedelta(hours=1) * 3 }}|{{ datetime.date(2024, 1, 1) == datetime.date(2024, 1, 1) }}";
        assert_eq!(render(src), "2024-02-20 00:00:00|29|2024-02-01|True|3:00:00|True");
        assert!(render("{{ datetime.datetime(2024, 1, 1) - datetime.datetime(2024, 1, 1, tzinfo=pytz.utc) }}").contains("naive"));
    }

    #[test]
    fn parsing_formatting_and_zones() {
        assert_eq!(
            render("{{ datetime.datetime.strptime('2024-05-06', '%Y-%m-%d').strftime('%d/%m/%Y %H:%M %f') }}"),
            "06/05/2024 00:00 000000"
        );
        assert_eq!(render("{{ datetime.datetime.fromisoformat('2026-08-15T12:00:00+00:00').timestamp() }}"), "1786795200.0");
        assert_eq!(
            render("{{ pytz.timezone('America/New_York').localize(datetime.datetime(2024, 7, 1, 9)) }}"),
            "2024-07-01 09:00:00-04:00"
        );
        assert_eq!(
            render(
                "{{ datetime.datetime(2024, 1, 1, 12, tzinfo=pytz.utc).astimezone(pytz.timezone('Europe/Paris')).strftime('%H:%M %Z %z') }}"
            ),
            "13:00 CET +0100"
        );
        assert_eq!(render("{{ datetime.date(2024, 12, 30).isocalendar() }}"), "[2025, 1, 1]");
        assert!(render("{{ datetime.date(2024, 1, 1).strftime('%Q') }}").starts_with("error"));
        assert!(render("{{ pytz.timezone('Mars/Olympus') }}").contains("UnknownTimeZoneError"));
    }
}
