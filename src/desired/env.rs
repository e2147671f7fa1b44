//! Environments: which one is selected, the `SLUICE_*` overrides of its
//! endpoints, its effective defaults, and the checks on its settings.

use crate::config::Workspace;
use crate::config::namespace::Compression;
use crate::config::secret::{SecretRef, inline_secret, is_secret_key, parse_reference};
use crate::config::units::millis;
use crate::config::workspace::{AlertsEnv, Environment as EnvConfig, S3Env, StateBackup};
use crate::diag::Diagnostic;

use super::model::{Environment, StateBackupState};
use super::units::{count, nonzero, object_lock, parse_unit, schedule};

/// Built-in defaults, when neither the environment nor the workspace sets one.
pub const DEFAULT_REPLICATION_FACTOR: u16 = 3;
pub const DEFAULT_PARTITIONS: u32 = 1;
pub const DEFAULT_PARTITION_WRITE_RPS: u64 = 1000;
pub const DEFAULT_PARTITION_READ_RPS: u64 = 2000;
/// How old an etcd snapshot may get before it is stale: KafScale's 7,200 s.
pub const DEFAULT_STALE_AFTER_MS: u64 = 7_200_000;

/// Where an environment's etcd snapshots go without `state_backup.prefix`.
pub fn default_snapshot_prefix(env: &str) -> String {
    format!("etcd-snapshots/{env}/")
}

/// `SLUICE_*` environment variables, as operators set them in CI.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub env: Option<String>,
    pub kafka_bootstrap: Option<String>,
    pub s3_endpoint: Option<String>,
    pub s3_region: Option<String>,
    pub etcd_endpoints: Option<String>,
    pub etcd_prefix: Option<String>,
    pub rules_dir: Option<String>,
    pub reload_url: Option<String>,
}

impl Overrides {
    /// The connection settings set by variable: they apply to whichever
    /// environment is selected, so to each of several in turn.
    pub fn connection_names(&self) -> Vec<&'static str> {
        [
            ("SLUICE_KAFKA_BOOTSTRAP", &self.kafka_bootstrap),
            ("SLUICE_S3_ENDPOINT", &self.s3_endpoint),
            ("SLUICE_S3_REGION", &self.s3_region),
            ("SLUICE_ETCD_ENDPOINTS", &self.etcd_endpoints),
            ("SLUICE_ETCD_PREFIX", &self.etcd_prefix),
            ("SLUICE_RULES_DIR", &self.rules_dir),
            ("SLUICE_RELOAD_URL", &self.reload_url),
        ]
        .into_iter()
        .filter(|(_, v)| v.is_some())
        .map(|(n, _)| n)
        .collect()
    }

    /// Reads the overrides from this process's environment; empty values count as unset.
    pub fn from_process() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Overrides {
            env: var("SLUICE_ENV"),
            kafka_bootstrap: var("SLUICE_KAFKA_BOOTSTRAP"),
            s3_endpoint: var("SLUICE_S3_ENDPOINT"),
            s3_region: var("SLUICE_S3_REGION"),
            etcd_endpoints: var("SLUICE_ETCD_ENDPOINTS"),
            etcd_prefix: var("SLUICE_ETCD_PREFIX"),
            rules_dir: var("SLUICE_RULES_DIR"),
            reload_url: var("SLUICE_RELOAD_URL"),
        }
    }
}

/// The environment to work on: the one asked for, else the only one, else `default`.
pub fn select_env(ws: &Workspace, requested: Option<&str>) -> Result<String, Box<Diagnostic>> {
    let names: Vec<&str> = ws.spec.environments.keys().map(String::as_str).collect();
    let listed = || {
        names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match requested {
        Some(name) if names.contains(&name) => Ok(name.to_owned()),
        Some(name) => Err(Box::new(
            Diagnostic::error(
                "unknown-environment",
                format!("environment `{name}` is not declared in the workspace"),
            )
            .hint(format!("declared environments: {}", listed())),
        )),
        None if names.len() == 1 => Ok(names[0].to_owned()),
        None if names.contains(&"default") => Ok("default".into()),
        None => Err(Box::new(
            Diagnostic::error(
                "choose-environment",
                "the workspace declares several environments",
            )
            .hint(format!(
                "choose one with `--env` or `SLUICE_ENV`: {}",
                listed()
            )),
        )),
    }
}

/// Defaults in force in one environment, as plain values.
#[derive(Clone, Debug)]
pub struct Effective {
    pub replication_factor: u16,
    pub partitions: u32,
    pub partition_write_rps: u64,
    pub partition_read_rps: u64,
    pub retention_ms: Option<i64>,
    pub compression: Option<Compression>,
    pub max_message_bytes: Option<u64>,
}

/// Resolves one environment: applies overrides, merges defaults and checks
/// its settings, adding a diagnostic per problem.
pub fn resolve_environment(
    ws: &Workspace,
    file: &str,
    name: &str,
    overrides: Option<&Overrides>,
    diags: &mut Vec<Diagnostic>,
) -> (Environment, Effective) {
    let cfg = &ws.spec.environments[name];
    let effective = effective_defaults(ws, cfg, file, name, diags);
    check_secrets(cfg, file, name, diags);
    check_connection(cfg, file, name, diags);
    let state_backup = cfg
        .state_backup
        .as_ref()
        .map(|b| state_backup(b, file, name, diags));
    let mut env = Environment {
        name: name.to_owned(),
        stage: cfg.stage,
        kafka: cfg.kafka.clone(),
        s3: cfg.s3.clone(),
        etcd: cfg.etcd.clone(),
        alerts: cfg.alerts.clone(),
        state_backup,
        overridden_by: Vec::new(),
    };
    if let Some(o) = overrides {
        apply_overrides(&mut env, o);
    }
    (env, effective)
}

fn split_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn apply_overrides(env: &mut Environment, o: &Overrides) {
    if let Some(v) = &o.kafka_bootstrap {
        env.kafka.bootstrap_servers.value = split_list(v);
        env.overridden_by.push("SLUICE_KAFKA_BOOTSTRAP");
    }
    if o.s3_endpoint.is_some() || o.s3_region.is_some() {
        let s3 = env.s3.get_or_insert_with(|| S3Env {
            region: "us-east-1".into(),
            endpoint: None,
            path_style: true,
            access_key_id: None,
            secret_access_key: None,
            replication_role: None,
        });
        if let Some(v) = &o.s3_endpoint {
            s3.endpoint = Some(v.clone());
            env.overridden_by.push("SLUICE_S3_ENDPOINT");
        }
        if let Some(v) = &o.s3_region {
            s3.region = v.clone();
            env.overridden_by.push("SLUICE_S3_REGION");
        }
    }
    if let Some(v) = &o.etcd_endpoints {
        env.etcd.endpoints.value = split_list(v);
        env.overridden_by.push("SLUICE_ETCD_ENDPOINTS");
    }
    if let Some(v) = &o.etcd_prefix {
        env.etcd.prefix = v.clone();
        env.overridden_by.push("SLUICE_ETCD_PREFIX");
    }
    if let Some(v) = &o.rules_dir {
        let alerts = env.alerts.get_or_insert_with(|| AlertsEnv {
            rules_dir: String::new(),
            reload_url: None,
        });
        alerts.rules_dir = v.clone();
        env.overridden_by.push("SLUICE_RULES_DIR");
    }
    // Only where there is a rules directory to reload.
    if let (Some(v), Some(alerts)) = (&o.reload_url, env.alerts.as_mut()) {
        alerts.reload_url = Some(v.clone());
        env.overridden_by.push("SLUICE_RELOAD_URL");
    }
}

/// An environment's `state_backup`, its units parsed and its prefix checked.
fn state_backup(
    b: &StateBackup,
    file: &str,
    env: &str,
    diags: &mut Vec<Diagnostic>,
) -> StateBackupState {
    let prefix = match &b.prefix {
        Some(p) => {
            if p.starts_with('/') || !(p.is_empty() || p.ends_with('/')) {
                diags.push(
                    Diagnostic::error(
                        "invalid-value",
                        format!(
                            "snapshot prefix `{}` must not start with `/` and must end with one",
                            p.value
                        ),
                    )
                    .at(file, p.loc)
                    .hint(format!(
                        "write it as a directory, such as `{}`",
                        default_snapshot_prefix(env)
                    )),
                );
            }
            p.value.clone()
        }
        None => default_snapshot_prefix(env),
    };
    let stale_after_ms = match parse_unit(b.stale_after.as_ref(), file, diags).map(millis) {
        Some(0) => {
            let at = b.stale_after.as_ref().expect("parsed above").loc();
            diags.push(
                Diagnostic::error("invalid-value", "`stale_after` must be longer than zero")
                    .at(file, at)
                    .hint("set it a little above the gap between two scheduled snapshots, such as `2h` for an hourly schedule"),
            );
            DEFAULT_STALE_AFTER_MS
        }
        Some(ms) => ms,
        None => DEFAULT_STALE_AFTER_MS,
    };
    StateBackupState {
        bucket: b.bucket.value.clone(),
        prefix,
        schedule: schedule(b.schedule.as_ref(), file, diags),
        stale_after_ms,
        object_lock: object_lock(b.object_lock.as_ref(), file, diags),
    }
}

/// Environment defaults over workspace defaults over built-in values; a
/// default replication factor above the broker count is an error here, once.
fn effective_defaults(
    ws: &Workspace,
    cfg: &EnvConfig,
    file: &str,
    name: &str,
    diags: &mut Vec<Diagnostic>,
) -> Effective {
    let (env_d, ws_d) = (&cfg.defaults, &ws.spec.defaults);
    let replication_factor = default_replication_factor(ws, cfg, file, name, diags);
    let given = env_d.partitions.as_ref().or(ws_d.partitions.as_ref());
    let mut partitions = count(given, DEFAULT_PARTITIONS, "partitions", file, diags);
    // DLQs and topics without capacity take it as it is: the limit holds here.
    let (max, limit) = crate::desired::namespace::partition_limit(&ws.spec.guards);
    if let Some(p) = given.filter(|p| p.value > max) {
        diags.push(
            Diagnostic::error(
                "invalid-value",
                format!(
                    "`defaults.partitions: {}` is above {limit} of {max} partitions",
                    p.value
                ),
            )
            .at(file, p.loc)
            .hint("lower `defaults.partitions`"),
        );
        partitions = DEFAULT_PARTITIONS;
    }
    let partition_write_rps = count(
        env_d
            .partition_write_rps
            .as_ref()
            .or(ws_d.partition_write_rps.as_ref()),
        DEFAULT_PARTITION_WRITE_RPS,
        "partition_write_rps",
        file,
        diags,
    );
    let partition_read_rps = count(
        env_d
            .partition_read_rps
            .as_ref()
            .or(ws_d.partition_read_rps.as_ref()),
        DEFAULT_PARTITION_READ_RPS,
        "partition_read_rps",
        file,
        diags,
    );
    Effective {
        replication_factor,
        partitions,
        partition_write_rps,
        partition_read_rps,
        retention_ms: parse_unit(
            env_d.retention.as_ref().or(ws_d.retention.as_ref()),
            file,
            diags,
        ),
        compression: env_d.compression.or(ws_d.compression),
        max_message_bytes: parse_unit(
            env_d
                .max_message_bytes
                .as_ref()
                .or(ws_d.max_message_bytes.as_ref()),
            file,
            diags,
        ),
    }
}

/// The environment's or the workspace's default replication factor, else
/// the built-in one; above the broker count, an error.
fn default_replication_factor(
    ws: &Workspace,
    cfg: &EnvConfig,
    file: &str,
    name: &str,
    diags: &mut Vec<Diagnostic>,
) -> u16 {
    let rf = cfg.defaults.replication_factor.as_ref().or(ws
        .spec
        .defaults
        .replication_factor
        .as_ref());
    let brokers = *cfg.kafka.brokers;
    match rf {
        Some(rf) => {
            nonzero(rf, "replication_factor", true, file, diags);
            if rf.value > brokers {
                diags.push(rf_above_brokers(rf.value, brokers, name).at(file, rf.loc).hint(format!(
                    "lower it, or set `environments.{name}.defaults.replication_factor` to at most {brokers}"
                )));
            }
            rf.value
        }
        None => {
            if DEFAULT_REPLICATION_FACTOR > brokers {
                diags.push(
                    Diagnostic::error(
                        "replication-factor",
                        format!("the built-in default replication factor {DEFAULT_REPLICATION_FACTOR} exceeds the {brokers} broker(s) of environment `{name}`"),
                    )
                    .at(file, cfg.kafka.brokers.loc)
                    .hint(format!("set `environments.{name}.defaults.replication_factor: {brokers}`")),
                );
            }
            DEFAULT_REPLICATION_FACTOR
        }
    }
}

/// The error for a replication factor the environment cannot place.
pub fn rf_above_brokers(rf: u16, brokers: u16, env: &str) -> Diagnostic {
    Diagnostic::error(
        "replication-factor",
        format!("replication factor {rf} exceeds the {brokers} broker(s) of environment `{env}`"),
    )
}

/// Secret fields must hold `${env:…}` or `${file:…}` references.
fn check_secrets(cfg: &EnvConfig, file: &str, name: &str, diags: &mut Vec<Diagnostic>) {
    let kafka = &cfg.kafka;
    let fields: [(&str, Option<&SecretRef>); 5] = [
        (
            "kafka.sasl.password",
            kafka.sasl.as_ref().map(|s| &s.password),
        ),
        (
            "kafka.tls.key_password",
            kafka.tls.as_ref().and_then(|t| t.key_password.as_ref()),
        ),
        (
            "s3.access_key_id",
            cfg.s3.as_ref().and_then(|s| s.access_key_id.as_ref()),
        ),
        (
            "s3.secret_access_key",
            cfg.s3.as_ref().and_then(|s| s.secret_access_key.as_ref()),
        ),
        ("etcd.password", cfg.etcd.password.as_ref()),
    ];
    for (field, secret) in fields {
        if let Some(s) = secret
            && s.source().is_none()
        {
            diags.push(inline_secret(&format!("environments.{name}.{field}")).at(file, s.loc()));
        }
    }
    for (key, value) in &kafka.properties {
        if is_secret_key(key) && parse_reference(&value.value.0).is_none() {
            diags.push(
                inline_secret(&format!("environments.{name}.kafka.properties.{key}"))
                    .at(file, value.loc),
            );
        }
    }
}

/// Settings that cannot work together.
fn check_connection(cfg: &EnvConfig, file: &str, name: &str, diags: &mut Vec<Diagnostic>) {
    use crate::config::workspace::SecurityProtocol::*;
    let kafka = &cfg.kafka;
    if *kafka.brokers == 0 {
        diags.push(
            Diagnostic::error(
                "invalid-value",
                format!("environment `{name}` declares 0 Kafka brokers"),
            )
            .at(file, kafka.brokers.loc)
            .hint("set `brokers` to the number of brokers in the cluster"),
        );
    }
    if kafka.bootstrap_servers.is_empty() {
        diags.push(
            Diagnostic::error("invalid-value", format!("environment `{name}` has no Kafka bootstrap servers"))
                .at(file, kafka.bootstrap_servers.loc)
                .hint("list at least one `host:port` under `bootstrap_servers` (or set `SLUICE_KAFKA_BOOTSTRAP`)"),
        );
    }
    if let Some(pin) = kafka.cluster_id.as_ref().filter(|id| id.trim().is_empty()) {
        diags.push(
            Diagnostic::error(
                "invalid-value",
                format!("environment `{name}` pins an empty Kafka `cluster_id`"),
            )
            .at(file, pin.loc)
            .hint("set `kafka.cluster_id` to the ID the cluster reports (a plan's header names it), or remove it"),
        );
    }
    let sasl_protocol = matches!(kafka.security_protocol, SaslPlaintext | SaslSsl);
    if sasl_protocol && kafka.sasl.is_none() {
        diags.push(
            Diagnostic::error(
                "invalid-value",
                format!(
                    "environment `{name}` uses a SASL security protocol without `sasl` settings"
                ),
            )
            .at(file, kafka.bootstrap_servers.loc)
            .hint("add `kafka.sasl` with `mechanism`, `username` and `password`"),
        );
    }
    if !sasl_protocol && kafka.sasl.is_some() {
        diags.push(
            Diagnostic::warning(
                "unused-setting",
                format!(
                    "environment `{name}` sets `kafka.sasl` but its security protocol is not SASL"
                ),
            )
            .at(file, kafka.bootstrap_servers.loc)
            .hint("set `security_protocol: sasl_ssl` (or `sasl_plaintext`), or remove `sasl`"),
        );
    }
    if cfg.etcd.endpoints.is_empty() {
        diags.push(
            Diagnostic::error("invalid-value", format!("environment `{name}` has no etcd endpoints"))
                .at(file, cfg.etcd.endpoints.loc)
                .hint("list at least one `http://host:port` under `etcd.endpoints` (or set `SLUICE_ETCD_ENDPOINTS`)"),
        );
    }
}

/// Replaces how `head` connects with how `base` does: for a pull request,
/// where CI connects and which secrets it sends are the base revision's,
/// never the change's. Returns each connection setting the change would
/// alter, for the reviewer; the rest of `head` (broker count, ACLs, the
/// replication role) stays the change's.
pub fn connect_as_base(head: &mut Environment, base: &Environment) -> Vec<String> {
    let mut changed = Vec::new();
    let mut note = |field: &str, differs: bool| {
        if differs {
            changed.push(format!("environments.{}.{field}", head.name));
        }
    };
    fn json<T: serde::Serialize>(v: &T) -> serde_json::Value {
        serde_json::to_value(v).unwrap_or_default()
    }
    {
        let (h, b) = (&mut head.kafka, &base.kafka);
        note(
            "kafka.bootstrap_servers",
            json(&h.bootstrap_servers) != json(&b.bootstrap_servers),
        );
        note(
            "kafka.security_protocol",
            json(&h.security_protocol) != json(&b.security_protocol),
        );
        note("kafka.sasl", json(&h.sasl) != json(&b.sasl));
        note("kafka.tls", json(&h.tls) != json(&b.tls));
        note(
            "kafka.properties",
            json(&h.properties) != json(&b.properties),
        );
        // The pin says which cluster the settings reach: it goes with them.
        note(
            "kafka.cluster_id",
            json(&h.cluster_id) != json(&b.cluster_id),
        );
        h.cluster_id = b.cluster_id.clone();
        h.bootstrap_servers = b.bootstrap_servers.clone();
        h.security_protocol = b.security_protocol;
        h.sasl = b.sasl.clone();
        h.tls = b.tls.clone();
        h.properties = b.properties.clone();
    }
    {
        let (h, b) = (&mut head.etcd, &base.etcd);
        note("etcd", json(h) != json(b));
        *h = b.clone();
    }
    let s3 = |s: &Option<S3Env>| {
        s.as_ref().map(|s| {
            (
                s.region.clone(),
                s.endpoint.clone(),
                s.path_style,
                json(&s.access_key_id),
                json(&s.secret_access_key),
            )
        })
    };
    note("s3", s3(&head.s3) != s3(&base.s3));
    head.s3 = match (head.s3.take(), &base.s3) {
        (Some(h), Some(b)) => Some(S3Env {
            replication_role: h.replication_role,
            ..b.clone()
        }),
        // Settings only the change adds are used after it merges, not here.
        (_, b) => b.clone(),
    };
    note("alerts", json(&head.alerts) != json(&base.alerts));
    head.alerts = base.alerts.clone();
    changed
}
