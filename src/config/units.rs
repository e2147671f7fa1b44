//! Human units as people write them: durations (`5m`, `7d`, `30days`), sizes
//! (`1MiB`) and cron schedules (`0 * * * *`). Percentages (`1%`) occur in alert
//! conditions and are read by their lexer.
//!
//! Config fields keep the text and its location; [`Human::parse`] turns it into
//! a value during validation, so that every malformed unit in a run is reported.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::located::{Loc, Located};
use super::scalar::Scalar;

/// What one kind of human unit parses to, and how it documents itself.
pub trait UnitKind {
    type Value;
    /// The schema name of the field type.
    const NAME: &'static str;
    /// The diagnostic code of a malformed value.
    const CODE: &'static str;
    /// What a reader is told the field holds.
    const DESCRIPTION: &'static str;
    /// How to fix a malformed value.
    const HINT: &'static str;
    /// Whether a bare integer is valid in the YAML.
    const INTEGER_OK: bool = false;
    fn parse(text: &str) -> Result<Self::Value, String>;
}

/// The text of a human-unit field, where it was written, and its kind.
pub struct Human<K> {
    pub raw: Located<String>,
    kind: PhantomData<K>,
}

impl<K: UnitKind> Human<K> {
    pub fn text(&self) -> &str {
        &self.raw.value
    }
    pub fn loc(&self) -> Loc {
        self.raw.loc
    }
    pub fn parse(&self) -> Result<K::Value, String> {
        K::parse(self.text().trim())
    }
}

impl<K> Clone for Human<K> {
    fn clone(&self) -> Self {
        Human {
            raw: self.raw.clone(),
            kind: PhantomData,
        }
    }
}

impl<K> fmt::Debug for Human<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.raw.value, f)
    }
}

impl<'de, K> Deserialize<'de> for Human<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Located::<Scalar>::deserialize(d)?;
        Ok(Human {
            raw: Located::new(raw.value.0, raw.loc),
            kind: PhantomData,
        })
    }
}

impl<K> Serialize for Human<K> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.raw.value)
    }
}

impl<K: UnitKind> JsonSchema for Human<K> {
    fn schema_name() -> Cow<'static, str> {
        K::NAME.into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        if K::INTEGER_OK {
            json_schema!({ "type": ["string", "integer"], "description": K::DESCRIPTION })
        } else {
            json_schema!({ "type": "string", "description": K::DESCRIPTION })
        }
    }
}

/// `5m`, `12h`, `7d`, `30days`, `1h30m`.
pub struct DurationUnit;
impl UnitKind for DurationUnit {
    type Value = Duration;
    const NAME: &'static str = "Duration";
    const CODE: &'static str = "invalid-duration";
    const DESCRIPTION: &'static str =
        "A duration: a number and a unit, such as `500ms`, `5m`, `12h`, `7d`, `30days` or `1h30m`.";
    const HINT: &'static str = "write a number and a unit, such as `5m`, `12h`, `7d` or `30days`";
    fn parse(text: &str) -> Result<Duration, String> {
        use humantime::DurationError as E;
        // `M` reads as months to some and minutes to others: neither is guessed.
        if text.contains('M') {
            return Err(format!(
                "invalid duration `{text}`: `M` is ambiguous (months, or minutes?); write `m` or `min` for minutes, or days such as `30d`"
            ));
        }
        humantime::parse_duration(text).map_err(|e| match e {
            E::UnknownUnit { unit, .. } => {
                format!("invalid duration `{text}`: unknown unit `{unit}`")
            }
            E::NumberExpected(_) | E::InvalidCharacter(_) | E::Empty => {
                format!("invalid duration `{text}`: expected a number and a unit")
            }
            other => format!("invalid duration `{text}`: {other}"),
        })
    }
}

/// A retention: a duration, or `infinite` (Kafka's `-1`), in milliseconds.
pub struct RetentionUnit;
impl UnitKind for RetentionUnit {
    type Value = i64;
    const NAME: &'static str = "Retention";
    const CODE: &'static str = "invalid-duration";
    const DESCRIPTION: &'static str = "How long messages are kept: a duration such as `12h`, `7d` or `30days`, or `infinite` to keep them forever.";
    const HINT: &'static str =
        "write a number and a unit, such as `12h`, `7d` or `30days`, or `infinite`";
    fn parse(text: &str) -> Result<i64, String> {
        if text == "infinite" {
            return Ok(-1);
        }
        DurationUnit::parse(text).map(|d| i64::try_from(millis(d)).unwrap_or(i64::MAX))
    }
}

/// A duration in Prometheus' own syntax: units `ms`, `s`, `m`, `h`, `d`, `w`
/// and `y`, largest first, no spaces (`5m`, `1h30m`); what a rule file takes.
pub struct PromDurationUnit;
impl UnitKind for PromDurationUnit {
    type Value = Duration;
    const NAME: &'static str = "PromDuration";
    const CODE: &'static str = "invalid-duration";
    const DESCRIPTION: &'static str = "A Prometheus duration: numbers with the units `ms`, `s`, `m`, `h`, `d`, `w` or `y`, largest first and without spaces, such as `30s`, `5m` or `1h30m`.";
    const HINT: &'static str = "Prometheus takes `ms`, `s`, `m`, `h`, `d`, `w` and `y`, largest first and without spaces, such as `5m` or `1h30m`";
    fn parse(text: &str) -> Result<Duration, String> {
        const UNITS: [(&str, u64); 7] = [
            ("y", 365 * 86_400_000),
            ("w", 7 * 86_400_000),
            ("d", 86_400_000),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1000),
            ("ms", 1),
        ];
        let bad = |why: &str| format!("invalid Prometheus duration `{text}`: {why}");
        if text.contains('M') {
            return Err(bad(
                "`M` is not a Prometheus unit (months, or minutes?); write `m` for minutes",
            ));
        }
        let (mut rest, mut total, mut last) = (text, 0u64, None::<usize>);
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(bad("expected a number and a unit"));
            }
            let n: u64 = rest[..digits]
                .parse()
                .map_err(|_| bad("the number is too large"))?;
            rest = &rest[digits..];
            let letters = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            let unit = &rest[..letters];
            let Some(i) = UNITS.iter().position(|(u, _)| *u == unit) else {
                return Err(bad(&if unit.is_empty() {
                    "expected a unit after the number".to_owned()
                } else {
                    format!("unknown unit `{unit}`")
                }));
            };
            if last.is_some_and(|l| i <= l) {
                return Err(bad("units go largest first, each once"));
            }
            last = Some(i);
            total = n
                .checked_mul(UNITS[i].1)
                .and_then(|ms| total.checked_add(ms))
                .ok_or_else(|| bad("too long"))?;
            rest = &rest[letters..];
        }
        if last.is_none() {
            return Err(bad("expected a number and a unit"));
        }
        Ok(Duration::from_millis(total))
    }
}

/// `1MiB`, `512KiB`, `1048576`.
pub struct SizeUnit;
impl UnitKind for SizeUnit {
    type Value = u64;
    const NAME: &'static str = "Size";
    const CODE: &'static str = "invalid-size";
    const DESCRIPTION: &'static str =
        "A size in bytes: an integer, or a number and a unit such as `512KiB`, `1MiB` or `1MB`.";
    const HINT: &'static str =
        "write bytes as an integer, or a number and a unit such as `512KiB` or `1MiB`";
    const INTEGER_OK: bool = true;
    fn parse(text: &str) -> Result<u64, String> {
        text.parse::<bytesize::ByteSize>()
            .map(|b| b.as_u64())
            .map_err(|_| format!("invalid size `{text}`: expected bytes, or a number and a unit such as `KiB`, `MiB` or `MB`"))
    }
}

/// Standard five-field cron, or `@hourly`-style nicknames.
pub struct CronUnit;
impl UnitKind for CronUnit {
    type Value = croner::Cron;
    const NAME: &'static str = "CronSchedule";
    const CODE: &'static str = "invalid-cron";
    const DESCRIPTION: &'static str = "A cron schedule with five fields (minute hour day-of-month month day-of-week), such as `0 */6 * * *`, or a nickname such as `@daily`.";
    const HINT: &'static str =
        "use five fields: minute hour day-of-month month day-of-week, such as `0 */6 * * *`";
    fn parse(text: &str) -> Result<croner::Cron, String> {
        use croner::parser::{CronParser, Seconds, Year};
        let fields = text.split_whitespace().count();
        if !text.starts_with('@') && fields != 5 {
            return Err(format!(
                "invalid cron schedule `{text}`: expected 5 fields, found {fields}"
            ));
        }
        CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(text)
            .map_err(|e| format!("invalid cron schedule `{text}`: {e}"))
    }
}

pub type HumanDuration = Human<DurationUnit>;
pub type HumanRetention = Human<RetentionUnit>;
pub type PromDuration = Human<PromDurationUnit>;
pub type HumanSize = Human<SizeUnit>;
pub type CronSchedule = Human<CronUnit>;

/// A duration as Prometheus writes it, and as people read it: `90000` ms is
/// `1m30s`. Rule files and messages both use it.
pub fn format_ms(ms: u64) -> String {
    use std::fmt::Write;
    if ms == 0 {
        return "0s".into();
    }
    let mut rest = ms;
    let mut out = String::new();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ] {
        if rest >= size {
            let _ = write!(out, "{}{unit}", rest / size);
            rest %= size;
        }
    }
    out
}

/// Milliseconds of a duration, as Kafka and etcd records want them.
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_people_write() {
        let cases = [
            ("5m", 300),
            ("7d", 604_800),
            ("30days", 2_592_000),
            ("12h", 43_200),
            ("1h30m", 5_400),
        ];
        for (text, secs) in cases {
            assert_eq!(
                DurationUnit::parse(text).unwrap(),
                Duration::from_secs(secs),
                "{text}"
            );
        }
        assert!(DurationUnit::parse("7").unwrap_err().contains("unit"));
        assert!(DurationUnit::parse("7dd").is_err());
    }

    #[test]
    fn retention_is_a_duration_or_infinite() {
        assert_eq!(RetentionUnit::parse("7d").unwrap(), 604_800_000);
        assert_eq!(RetentionUnit::parse("infinite").unwrap(), -1);
        assert!(RetentionUnit::parse("forever").is_err());
        assert!(
            RetentionUnit::parse("2M")
                .unwrap_err()
                .contains("ambiguous")
        );
    }

    #[test]
    fn prometheus_durations_take_only_prometheus_units() {
        let ms = |t| PromDurationUnit::parse(t).map(|d| d.as_millis());
        assert_eq!(ms("5m").unwrap(), 300_000);
        assert_eq!(ms("1h30m").unwrap(), 5_400_000);
        assert_eq!(ms("2w").unwrap(), 14 * 86_400_000);
        assert_eq!(ms("1y").unwrap(), 365 * 86_400_000);
        assert_eq!(ms("250ms").unwrap(), 250);
        for bad in [
            "2M", "30days", "5 m", "5min", "5", "m", "30m1h", "5m5m", "", "1.5h",
        ] {
            assert!(ms(bad).is_err(), "{bad}");
        }
        assert!(ms("2M").unwrap_err().contains("`M`"));
        assert!(ms("30days").unwrap_err().contains("unknown unit `days`"));
    }

    #[test]
    fn sizes_people_write() {
        assert_eq!(SizeUnit::parse("1MiB").unwrap(), 1_048_576);
        assert_eq!(SizeUnit::parse("1MB").unwrap(), 1_000_000);
        assert_eq!(SizeUnit::parse("512KiB").unwrap(), 524_288);
        assert_eq!(SizeUnit::parse("2048").unwrap(), 2048);
        assert!(SizeUnit::parse("1 parsec").is_err());
    }

    #[test]
    fn cron_five_fields_or_nickname() {
        assert!(CronUnit::parse("0 */6 * * *").is_ok());
        assert!(CronUnit::parse("@daily").is_ok());
        assert!(
            CronUnit::parse("0 0 */6 * * *")
                .unwrap_err()
                .contains("5 fields")
        );
        assert!(CronUnit::parse("61 * * * *").is_err());
        assert!(CronUnit::parse("every hour").is_err());
    }
}
