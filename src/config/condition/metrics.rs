//! The metrics of the condition language: the one table of what each
//! measures and the PromQL it compiles to by default. A workspace's
//! `spec.metrics` replaces a template or adds a metric.
//!
//! Templates are in the units Prometheus uses (seconds, ratios). Latency and
//! errors come from the data plane's request metrics; rates, lag and
//! replication from kafka_exporter; backup age from `sluice watch`'s
//! scheduled backups.

use super::Dim;

/// A built-in metric.
#[derive(Clone, Copy, Debug)]
pub struct Metric {
    pub name: &'static str,
    /// What it measures, so that conditions compare like with like.
    pub dim: Dim,
    /// Its default PromQL template.
    pub promql: &'static str,
}

/// The built-in metrics.
pub const METRICS: &[Metric] = &[
    Metric {
        name: "p50_latency",
        dim: Dim::Duration,
        promql: r#"histogram_quantile(0.5, sum by (le) (rate(streaming_request_duration_seconds_bucket{namespace="$namespace"}[5m])))"#,
    },
    Metric {
        name: "p95_latency",
        dim: Dim::Duration,
        promql: r#"histogram_quantile(0.95, sum by (le) (rate(streaming_request_duration_seconds_bucket{namespace="$namespace"}[5m])))"#,
    },
    Metric {
        name: "p99_latency",
        dim: Dim::Duration,
        promql: r#"histogram_quantile(0.99, sum by (le) (rate(streaming_request_duration_seconds_bucket{namespace="$namespace"}[5m])))"#,
    },
    Metric {
        name: "error_rate",
        dim: Dim::Ratio,
        promql: r#"sum(rate(streaming_requests_failed_total{namespace="$namespace"}[5m])) / sum(rate(streaming_requests_total{namespace="$namespace"}[5m]))"#,
    },
    Metric {
        name: "write_rps",
        dim: Dim::Number,
        promql: r#"sum(rate(kafka_topic_partition_current_offset{topic=~"$topics"}[5m]))"#,
    },
    Metric {
        name: "read_rps",
        dim: Dim::Number,
        promql: r#"sum(rate(kafka_consumergroup_current_offset{topic=~"$topics"}[5m]))"#,
    },
    Metric {
        name: "consumer_lag",
        dim: Dim::Number,
        promql: r#"max(sum by (consumergroup) (kafka_consumergroup_lag{topic=~"$topics"}))"#,
    },
    Metric {
        name: "dlq_depth",
        dim: Dim::Number,
        promql: r#"sum(kafka_topic_partition_current_offset{topic=~"$dlq_topics"}) - sum(kafka_topic_partition_oldest_offset{topic=~"$dlq_topics"})"#,
    },
    Metric {
        name: "under_replicated_partitions",
        dim: Dim::Number,
        promql: r#"sum(kafka_topic_partition_under_replicated_partition{topic=~"$topics"})"#,
    },
    Metric {
        name: "backup_age",
        dim: Dim::Duration,
        // Published by `sluice watch`'s scheduled backups: the age grows
        // while runs fail or stop, so `backup_age > rpo` fires.
        promql: r#"time() - max(sluice_backup_last_success_timestamp_seconds{namespace="$namespace"})"#,
    },
];

/// The placeholders a template may use: `$namespace`, `$topics`,
/// `$dlq_topics` and `$groups`.
pub const PLACEHOLDERS: &[&str] = &["namespace", "topics", "dlq_topics", "groups"];
