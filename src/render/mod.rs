//! Plans for people (text, markdown) and for bots (JSON, the plan itself).

mod document;
pub mod markdown;
pub mod progress;
pub mod report;
pub mod status;
pub mod text;

use std::collections::BTreeMap;

use crate::plan::{Action, Change, Field, FieldChange};
use crate::resource::Kind;

/// Above this many changes a plan is shown compact unless `--detail` is
/// given: a 2,000-topic plan in full runs to some 14,000 lines, which nobody
/// reads, while one line per change still shows what moves where.
pub const COMPACT_ABOVE: usize = 200;

/// How much of each change a text or markdown plan shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Detail {
    /// Compact above [`COMPACT_ABOVE`] changes, in full otherwise.
    #[default]
    Auto,
    /// One line per change: its action, address and the names of the fields
    /// it changes. Blocked changes keep their reasons: they are what to fix.
    Compact,
    /// Every field of every change.
    Full,
}

impl Detail {
    /// Whether a plan of `changes` changes is shown compact.
    pub fn compact(self, changes: usize) -> bool {
        match self {
            Detail::Auto => changes > COMPACT_ABOVE,
            Detail::Compact => true,
            Detail::Full => false,
        }
    }

    /// What a compact plan says about itself, when it was not asked for.
    fn note(self, changes: usize) -> Option<String> {
        (self == Detail::Auto && self.compact(changes)).then(|| {
            format!(
                "Compact: {changes} changes (more than {COMPACT_ABOVE}), one line each with the fields they change; run with `--detail` to see every value."
            )
        })
    }
}

/// A change on one line: its symbol, its address and, for an update, the
/// fields it changes (a record's top-level keys); a create or a delete
/// changes all of them.
pub fn compact_line(change: &Change) -> String {
    let head = format!("{} {}", change.action.symbol(), change.address);
    if !matches!(change.action, Action::Update | Action::Blocked) {
        return head;
    }
    let mut names: Vec<String> = Vec::new();
    for f in &change.fields {
        let name = match &f.field {
            Field::Path(path) => path.split(['.', '[']).next().unwrap_or(path).to_owned(),
            field => field.to_string(),
        };
        if !names.contains(&name) {
            names.push(name);
        }
    }
    if names.is_empty() {
        head
    } else {
        format!("{head}  {}", names.join(", "))
    }
}

/// The first 12 characters of a commit or a digest: enough to tell them apart.
pub fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// Changes grouped by namespace, namespaces sorted, changes in plan order.
fn by_namespace<'a>(
    changes: impl IntoIterator<Item = &'a Change>,
) -> BTreeMap<&'a str, Vec<&'a Change>> {
    let mut out: BTreeMap<&str, Vec<&Change>> = BTreeMap::new();
    for c in changes {
        out.entry(c.namespace.as_str()).or_default().push(c);
    }
    out
}

/// `name: before → after`, `name: value` for a create, aligned.
fn field_lines(change: &Change) -> Vec<String> {
    if let Some(diff) = document::diff(change) {
        return diff;
    }
    let width = change
        .fields
        .iter()
        .map(|f| f.field.to_string().len())
        .max()
        .unwrap_or(0);
    change
        .fields
        .iter()
        .map(|f| {
            format!(
                "{:width$}  {}",
                format!("{}:", f.field),
                values(change, f),
                width = width + 1
            )
        })
        .collect()
}

fn values(change: &Change, f: &FieldChange) -> String {
    let absent = "(absent)";
    // A topic config sluice stops setting goes back to the broker's default.
    let reset = if change.address.kind() == Kind::KafkaTopic {
        "(default)"
    } else {
        absent
    };
    let show = |v: &Option<serde_json::Value>, none: &str| {
        v.as_ref().map_or_else(|| none.to_owned(), |v| f.show(v))
    };
    match (&f.before, &f.after) {
        (None, Some(after)) if change.live.is_none() => f.show(after),
        (before, after) => format!("{} → {}", show(before, absent), show(after, reset)),
    }
}

/// "3 to create, 1 to delete" for one group of changes.
fn counts(changes: &[&Change]) -> String {
    let s = crate::plan::Summary::of(changes.iter().copied());
    let mut parts = Vec::new();
    for (n, what) in [
        (s.create, "to create"),
        (s.update, "to update"),
        (s.delete, "to delete"),
        (s.blocked, "blocked"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    if s.drift > 0 {
        parts.push(format!("{} from drift", s.drift));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {

    use crate::plan::{Action, Cause, Change, FieldChange, Plan};
    use crate::resource::{Address, TopicValue, Value};

    /// A plan creating `n` topics, each in its own namespace.
    fn plan(n: usize) -> Plan {
        let changes: Vec<Change> = (0..n)
            .map(|i| Change {
                address: Address::topic(&format!("team-{i:05}-events")),
                namespace: format!("team-{i:05}"),
                action: Action::Create,
                cause: Cause::Pending,
                drifted: false,
                fields: vec![FieldChange {
                    field: crate::plan::Field::Partitions,
                    before: None,
                    after: Some(12.into()),
                }],
                reasons: Vec::new(),
                source: None,
                desired: Some(Value::Topic(TopicValue {
                    partitions: 12,
                    replication_factor: 3,
                    config: crate::resource::Configs::new(),
                })),
                live: None,
                inventory: None,
            })
            .collect();
        Plan::of_changes("prod", changes)
    }

    #[test]
    fn a_large_markdown_plan_stays_under_the_limit_and_says_so() {
        let md = super::markdown::plan(&plan(3000));
        assert!(md.len() <= super::markdown::LIMIT, "{}", md.len());
        assert!(md.contains("Truncated:"), "no truncation note");
        assert!(md.contains("| … and "), "the table is cut too");
        assert!(md.contains("**Plan: 3000 to create, 0 to update, 0 to delete.**"));
        let small = super::markdown::plan(&plan(3));
        assert!(!small.contains("Truncated"));
        assert_eq!(small.matches("<details>").count(), 3);
    }

    /// An update of a registry record's owner and first topic.
    fn record_update() -> Change {
        let field = |path: &str, before: &str, after: &str| FieldChange {
            field: crate::plan::Field::Path(path.into()),
            before: Some(before.into()),
            after: Some(after.into()),
        };
        Change {
            fields: vec![
                field("owner", "a", "b"),
                field("topics[0].name", "x", "y"),
                field("topics[0].dlq_of", "x", "y"),
            ],
            desired: Some(Value::Record(serde_json::json!({"owner": "b"}).into())),
            live: Some(Value::Record(serde_json::json!({"owner": "a"}).into())),
            ..Change::bare(
                Address::etcd_key("/sluice/namespaces/team"),
                "team",
                Action::Update,
                Cause::Drift,
            )
        }
    }

    #[test]
    fn a_long_plan_is_compact_and_says_how_to_see_every_field() {
        let lines = |text: &str| text.lines().count();
        let at = super::COMPACT_ABOVE;
        let full = super::text::plan(&plan(at), false);
        assert!(full.contains("        partitions:  12"), "{full}");
        assert!(!full.contains("Compact"));

        let long = plan(at + 1);
        let compact = super::text::plan(&long, false);
        assert!(!compact.contains("partitions:"), "no field lines");
        assert!(compact.contains("    + kafka.topic/team-00000-events\n"));
        assert!(
            compact.contains("run with `--detail` to see every value"),
            "{compact}"
        );
        // A namespace line and a change line each, and the header and footer.
        assert!(lines(&compact) <= 2 * (at + 1) + 8, "{}", lines(&compact));
        let detail = super::text::plan_with(&long, false, super::Detail::Full);
        assert!(detail.contains("partitions:") && !detail.contains("Compact"));
        let asked = super::text::plan_with(&plan(2), false, super::Detail::Compact);
        assert!(!asked.contains("partitions:") && !asked.contains("Compact:"));
        let drift = super::text::drift_with(&long, false, super::Detail::Auto);
        assert!(drift.contains("--detail") && !drift.contains("partitions:"));
        let md = super::markdown::plan(&long);
        assert!(
            md.contains("--detail") && !md.contains("partitions:"),
            "{md}"
        );
    }

    #[test]
    fn a_compact_update_names_its_fields_once_each() {
        assert_eq!(
            super::compact_line(&record_update()),
            "~ etcd.key//sluice/namespaces/team  owner, topics"
        );
        let mut p = plan(0);
        p.changes = vec![record_update()];
        let text = super::text::plan_with(&p, false, super::Detail::Compact);
        assert!(
            text.contains("    ~ etcd.key//sluice/namespaces/team  owner, topics  (drift)\n"),
            "{text}"
        );
    }

    #[test]
    fn a_record_shows_as_a_diff_of_its_json() {
        let mut p = plan(0);
        p.changes = vec![record_update()];
        let text = super::text::plan_with(&p, false, super::Detail::Full);
        assert!(
            text.contains("        -  \"owner\": \"a\"\n        +  \"owner\": \"b\"\n"),
            "{text}"
        );
        assert!(
            !text.contains("topics[0]"),
            "no field-by-field listing: {text}"
        );
    }

    #[test]
    fn the_header_names_the_endpoints_and_a_saved_plan_of_another_cluster_differs() {
        let mut p = plan(1);
        p.endpoints = Some(crate::plan::Endpoints {
            kafka: vec!["b1:9092".into(), "b2:9092".into()],
            cluster_id: Some("abc".into()),
            etcd: vec!["http://****@etcd:2379".into()],
            etcd_prefix: "/sluice/".into(),
            s3_endpoint: None,
            s3_region: Some("eu-west-1".into()),
            rules_dir: Some("/etc/prometheus/rules".into()),
        });
        let text = super::text::plan(&p, false);
        assert!(
            text.starts_with(
                "sluice plan for environment `prod`, from the working tree\n  Kafka  b1:9092, b2:9092 (cluster `abc`)\n  etcd   http://****@etcd:2379, prefix `/sluice/`\n  S3     AWS, region eu-west-1\n  rules  /etc/prometheus/rules\n"
            ),
            "{text}"
        );
        let md = super::markdown::plan(&p);
        assert!(
            md.contains("- Kafka: b1:9092, b2:9092 (cluster `abc`)\n"),
            "{md}"
        );

        let mut elsewhere = p.clone();
        assert!(p.differences(&elsewhere).is_empty());
        if let Some(e) = elsewhere.endpoints.as_mut() {
            e.cluster_id = Some("xyz".into());
        }
        assert_eq!(
            p.differences(&elsewhere),
            [
                "cluster: the plan was made against Kafka cluster `abc`; the environment's brokers now report `xyz`"
            ]
        );
    }

    #[test]
    fn colour_only_when_asked() {
        let p = plan(1);
        assert!(super::text::plan(&p, true).contains("\x1b[32m+ kafka.topic/team-00000-events"));
        assert!(!super::text::plan(&p, false).contains('\x1b'));
        assert!(
            super::text::plan(&p, false)
                .ends_with("Plan: 1 to create, 0 to update, 0 to delete.\n")
        );
    }
}
