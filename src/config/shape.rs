//! Every shape problem of a document in one run. Serde stops at the first
//! field it cannot decode; a document that fails to decode is therefore read
//! a second time as plain data, checked against the JSON Schema generated
//! from the same types (which reports every violation with its path), and
//! each path is mapped back to the line and column it was written at.

use std::collections::{BTreeMap, HashMap};
use std::sync::{LazyLock, Mutex};

use granit_parser::{Event, Parser};
use jsonschema::error::{TypeKind, ValidationError, ValidationErrorKind};
use jsonschema::paths::LocationSegment;
use jsonschema::{JsonType, Validator};
use schemars::JsonSchema;
use serde_json::Value;

use super::Loc;
use super::parse::suggest_among;
use super::secret::inline_secret;
use crate::diag::Diagnostic;

/// The hint for a problem with no better one.
pub const SCHEMA_HINT: &str =
    "run `sluice schema namespace` (or `workspace`) to see every field and the values it takes";

/// Every problem the schema of `T` finds in `text` (one document, padded so
/// its lines are the file's). Empty when the text is not YAML that reads as
/// plain data, or when the schema finds nothing: the caller then reports the
/// decoder's own error.
pub fn problems<T: JsonSchema>(file: &str, text: &str) -> Vec<Diagnostic> {
    let Ok(value) = serde_saphyr::from_str::<Value>(text) else {
        return Vec::new();
    };
    let (schema, validator) = compiled::<T>();
    let places = places(text);
    let mut out = Vec::new();
    for err in validator.iter_errors(&value) {
        describe(&err, schema, &places, &mut out);
    }
    let mut seen = std::collections::HashSet::new();
    out.into_iter()
        .filter(|(loc, ..)| seen.insert(*loc))
        .map(|(loc, code, message, hint)| Diagnostic::error(code, message).at(file, loc).hint(hint))
        .collect()
}

type Problem = (Loc, &'static str, String, String);

/// The schema of `T` and its validator, built once per type.
fn compiled<T: JsonSchema>() -> (&'static Value, &'static Validator) {
    static CACHE: LazyLock<Mutex<HashMap<String, (&'static Value, &'static Validator)>>> =
        LazyLock::new(Default::default);
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    *cache
        .entry(T::schema_name().into_owned())
        .or_insert_with(|| {
            let schema = serde_json::to_value(schemars::schema_for!(T)).expect("a schema is JSON");
            let validator =
                jsonschema::validator_for(&schema).expect("the generated schema compiles");
            (Box::leak(Box::new(schema)), Box::leak(Box::new(validator)))
        })
}

/// Where each value (and, in a mapping, its key) was written, by JSON pointer.
#[derive(Default)]
struct Places {
    values: BTreeMap<String, Loc>,
    keys: BTreeMap<String, Loc>,
}

impl Places {
    /// The place of the value at `pointer`, or of its nearest written parent.
    fn value(&self, pointer: &str) -> Loc {
        let mut p = pointer;
        loop {
            if let Some(loc) = self.values.get(p) {
                return *loc;
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return Loc::UNKNOWN,
            }
        }
    }

    fn key(&self, pointer: &str) -> Loc {
        self.keys
            .get(pointer)
            .copied()
            .unwrap_or_else(|| self.value(pointer))
    }
}

enum Frame {
    /// A mapping's pointer, and the key of the value that comes next.
    Map(String, Option<String>),
    /// A sequence's pointer and the index of the next item.
    Seq(String, usize),
}

/// Reads the events of `text` and records the place of every value and key.
fn places(text: &str) -> Places {
    let mut out = Places::default();
    let mut stack: Vec<Frame> = Vec::new();
    for next in Parser::new_from_str(text) {
        let Ok((event, span)) = next else { break };
        let loc = Loc {
            line: u32::try_from(span.start.line()).unwrap_or(u32::MAX),
            column: u32::try_from(span.start.col() + 1).unwrap_or(u32::MAX),
        };
        match event {
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let here = next_pointer(&mut stack);
                out.values.insert(here.clone(), loc);
                stack.push(if matches!(event, Event::MappingStart(..)) {
                    Frame::Map(here, None)
                } else {
                    Frame::Seq(here, 0)
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
            }
            Event::Scalar(value, ..) => {
                if let Some(Frame::Map(at, key @ None)) = stack.last_mut() {
                    out.keys.insert(format!("{at}/{}", escape(&value)), loc);
                    *key = Some(value.to_string());
                    continue;
                }
                out.values.insert(next_pointer(&mut stack), loc);
            }
            Event::Alias(..) => {
                out.values.insert(next_pointer(&mut stack), loc);
            }
            _ => {}
        }
    }
    out
}

/// The pointer of the value that starts now, advancing its parent.
fn next_pointer(stack: &mut [Frame]) -> String {
    match stack.last_mut() {
        None => String::new(),
        Some(Frame::Map(at, key)) => format!("{at}/{}", escape(&key.take().unwrap_or_default())),
        Some(Frame::Seq(at, i)) => {
            *i += 1;
            format!("{at}/{}", *i - 1)
        }
    }
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// One validation error as problems (an object with three unknown keys is three).
fn describe(err: &ValidationError, schema: &Value, places: &Places, out: &mut Vec<Problem>) {
    let at = err.instance_path().as_str();
    let here = places.value(at);
    let last = err.instance_path().iter().last().map(|s| match s {
        LocationSegment::Property(p) => p.into_owned(),
        LocationSegment::Index(i) => i.to_string(),
    });
    match err.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let allowed = allowed_fields(schema, err.schema_path().as_str());
            for name in unexpected {
                let message = format!(
                    "unknown field `{name}`, expected one of {}",
                    allowed.join(", ")
                );
                let hint = suggest_among(name, &allowed)
                    .unwrap_or_else(|| format!("remove it, or check its spelling: {SCHEMA_HINT}"));
                out.push((
                    places.key(&format!("{at}/{}", escape(name))),
                    "unknown-field",
                    message,
                    hint,
                ));
            }
        }
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            out.push((
                here,
                "missing-field",
                format!("missing field `{name}`"),
                format!("add `{name}`; {SCHEMA_HINT}"),
            ));
        }
        ValidationErrorKind::Type { kind } => {
            let want = expected(kind);
            let got = match err.instance().as_ref() {
                Value::Array(_) => "a list",
                Value::Object(_) => "a mapping",
                Value::String(_) => "text",
                Value::Bool(_) => "a boolean",
                Value::Number(_) => "a number",
                Value::Null => "nothing",
            };
            let hint = match got {
                "a list" if want.starts_with("a single value") => {
                    "Kafka takes a list as one comma-separated value, such as `compact,delete`"
                        .into()
                }
                _ => format!("this field takes {want}"),
            };
            out.push((
                here,
                "wrong-type",
                format!("expected {want}, not {got}"),
                hint,
            ));
        }
        ValidationErrorKind::Enum { .. } | ValidationErrorKind::Constant { .. } => {
            out.push(unknown_value(
                err.instance(),
                &options(err),
                last.as_deref(),
                here,
            ));
        }
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => {
            one_of(err, context, schema, places, last.as_deref(), out);
        }
        ValidationErrorKind::Minimum { limit }
        | ValidationErrorKind::ExclusiveMinimum { limit } => {
            out.push((
                here,
                "invalid-value",
                format!("{}must be at least {limit}", field(last.as_deref())),
                format!("write a value of {limit} or more"),
            ));
        }
        ValidationErrorKind::Maximum { limit }
        | ValidationErrorKind::ExclusiveMaximum { limit } => {
            out.push((
                here,
                "invalid-value",
                format!("{}must be at most {limit}", field(last.as_deref())),
                format!("write a value of {limit} or less"),
            ));
        }
        ValidationErrorKind::Pattern { .. } if last.as_deref().is_some_and(is_secret_field) => {
            let dotted: Vec<String> = err
                .instance_path()
                .iter()
                .map(|s| s.to_string())
                .skip_while(|s| s == "spec")
                .collect();
            let d = inline_secret(&dotted.join("."));
            out.push((here, d.code, d.message, d.hint.unwrap_or_default()));
        }
        _ => out.push((
            here,
            "wrong-type",
            "this value does not have the shape the field takes".into(),
            SCHEMA_HINT.into(),
        )),
    }
}

/// "`name` " for a named field, nothing for a list item.
fn field(last: Option<&str>) -> String {
    match last {
        Some(name) if name.parse::<usize>().is_err() => format!("`{name}` "),
        _ => String::new(),
    }
}

/// Fields that take a `SecretRef`.
fn is_secret_field(name: &str) -> bool {
    [
        "password",
        "access_key_id",
        "secret_access_key",
        "key_password",
    ]
    .contains(&name)
}

/// `anyOf`/`oneOf`: an optional value is judged by its one non-null form;
/// a choice of words is one "unknown value" with every word.
fn one_of(
    err: &ValidationError,
    context: &[Vec<ValidationError<'static>>],
    schema: &Value,
    places: &Places,
    last: Option<&str>,
    out: &mut Vec<Problem>,
) {
    let here = places.value(err.instance_path().as_str());
    let is_null_branch = |errs: &Vec<ValidationError>| {
        matches!(errs.as_slice(), [e] if matches!(e.kind(),
            ValidationErrorKind::Type { kind: TypeKind::Single(JsonType::Null) }))
    };
    let branches: Vec<_> = context.iter().filter(|b| !is_null_branch(b)).collect();
    let words: Option<Vec<String>> = branches
        .iter()
        .flat_map(|b| b.iter())
        .map(|e| match e.kind() {
            ValidationErrorKind::Enum { .. } | ValidationErrorKind::Constant { .. } => {
                Some(options(e))
            }
            _ => None,
        })
        .collect::<Option<Vec<_>>>()
        .map(|w| w.concat());
    match (branches.as_slice(), words) {
        (_, Some(words)) if !words.is_empty() => {
            out.push(unknown_value(err.instance(), &words, last, here));
        }
        ([only], _) => only.iter().for_each(|e| describe(e, schema, places, out)),
        _ => out.push((
            here,
            "wrong-type",
            "this value matches none of the forms the field takes".into(),
            SCHEMA_HINT.into(),
        )),
    }
}

fn unknown_value(instance: &Value, words: &[String], last: Option<&str>, at: Loc) -> Problem {
    let got = match instance {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let listed = words
        .iter()
        .map(|w| format!("`{w}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let message = format!("unknown value `{got}`, expected one of {listed}");
    let hint = match (last, got.as_str()) {
        (Some("kind"), "Workspace") => "a Workspace belongs in `sluice.yaml` at the repository root; files under `namespaces/` hold `kind: Namespace`".into(),
        (Some("kind"), "Namespace") => "namespaces belong in `namespaces/**/*.yaml`; `sluice.yaml` holds the one `kind: Workspace`".into(),
        (Some("kind"), _) => format!("sluice reads only `kind: Namespace` under `namespaces/` and `kind: Workspace` in `sluice.yaml`; move other documents out (a misspelt kind: {})", suggest_among(&got, words).unwrap_or_else(|| format!("write `{}`", words.join("` or `")))),
        _ => suggest_among(&got, words).unwrap_or_else(|| "use one of the listed values".into()),
    };
    let code = if last == Some("kind") {
        "wrong-kind"
    } else {
        "unknown-value"
    };
    (at, code, message, hint)
}

/// The words an `enum` or `const` error allows.
fn options(err: &ValidationError) -> Vec<String> {
    let words = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match err.kind() {
        ValidationErrorKind::Enum { options } => match options.as_ref() {
            Value::Array(a) => a.iter().map(words).collect(),
            other => vec![words(other)],
        },
        ValidationErrorKind::Constant { expected_value } => vec![words(expected_value)],
        _ => Vec::new(),
    }
}

/// The field names of the object schema whose `additionalProperties` failed.
fn allowed_fields(schema: &Value, keyword: &str) -> Vec<String> {
    let object = keyword
        .strip_suffix("/additionalProperties")
        .and_then(|p| schema.pointer(p))
        .or_else(|| (keyword == "/additionalProperties").then_some(schema));
    object
        .and_then(|o| o.get("properties"))
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

fn expected(kind: &TypeKind) -> String {
    let one = |t: JsonType| match t {
        JsonType::Integer => "a whole number",
        JsonType::Number => "a number",
        JsonType::Boolean => "`true` or `false`",
        JsonType::String => "text",
        JsonType::Object => "a mapping of keys to values",
        JsonType::Array => "a list",
        JsonType::Null => "nothing",
    };
    match kind {
        TypeKind::Single(t) => one(*t).into(),
        TypeKind::Multiple(set) => {
            let has = |t| set.iter().any(|x| x == t);
            if has(JsonType::String) && has(JsonType::Boolean) && has(JsonType::Number) {
                return "a single value (text, a number or `true`/`false`)".into();
            }
            let words: Vec<&str> = set
                .iter()
                .filter(|t| !(*t == JsonType::Integer && has(JsonType::Number)))
                .map(one)
                .collect();
            words.join(" or ")
        }
    }
}
