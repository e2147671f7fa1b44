//! The etcd records sluice keeps for the data plane (registry, grants,
//! alerts, DR), as JSON: one range read per prefix, writes in transactions
//! fenced by the apply lock.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{Client, ConnectOptions, GetOptions, Txn, TxnOp, TxnOpResponse};

use super::{Backend, BackendError, ConnectError, DEFAULT_TIMEOUT};
use crate::config::secret::resolve;
use crate::config::workspace::EtcdEnv;
use crate::plan::{Action, Change, LiveResource, LiveState};
use crate::resource::{Address, Kind, Record, System, Value};
use crate::state::Fence;
use crate::state::etcd::{fence_compare, readable};

/// etcd's default limit is 128 operations per transaction.
const TXN_OPS: usize = 100;

/// Connects to the environment's etcd (fails when no endpoint answers);
/// every request times out after `timeout`.
pub async fn connect(etcd: &EtcdEnv, timeout: Duration) -> Result<Client, ConnectError> {
    connect_with(etcd, Some(timeout)).await
}

/// [`connect`], with the request timeout given: `None` for a client whose
/// requests wait as long as they need to, such as an election's campaign.
pub async fn connect_with(
    etcd: &EtcdEnv,
    request_timeout: Option<Duration>,
) -> Result<Client, ConnectError> {
    let connect = request_timeout
        .unwrap_or(DEFAULT_TIMEOUT)
        .min(Duration::from_secs(5));
    let mut options = ConnectOptions::new()
        .with_connect_timeout(connect)
        .with_keep_alive(Duration::from_secs(5), Duration::from_secs(5));
    if let Some(t) = request_timeout {
        options = options.with_timeout(t);
    }
    if let Some(user) = &etcd.username {
        let user = resolve(user, "etcd.username")?.unwrap_or_else(|| user.clone());
        let password = match &etcd.password {
            Some(p) => p.resolve("etcd.password")?,
            None => String::new(),
        };
        options = options.with_user(user, password);
    }
    let endpoints = etcd.endpoints.value.clone();
    let after = request_timeout.unwrap_or(connect);
    let error = |cause: etcd_client::Error| {
        // tonic reports its deadline as a cancelled call, "Timeout expired".
        if cause.to_string().contains("Timeout expired") {
            ConnectError::EtcdTimedOut {
                endpoints: endpoints.join(","),
                after,
            }
        } else {
            ConnectError::Etcd {
                endpoints: endpoints.join(","),
                cause,
            }
        }
    };
    let mut client = Client::connect(&endpoints, Some(options))
        .await
        .map_err(error)?;
    // Connecting is lazy; a status call proves an endpoint answers.
    client.status().await.map_err(error)?;
    Ok(client)
}

/// The records of one environment.
pub struct EtcdBackend {
    client: Client,
    /// The environment's prefix: sluice writes records under it only.
    prefix: String,
}

impl EtcdBackend {
    pub fn new(client: Client, prefix: &str) -> Self {
        EtcdBackend {
            client,
            prefix: prefix.to_owned(),
        }
    }

    /// Whether `key` is a record sluice writes: in one of the record
    /// directories under its prefix, never its own state or another tool's key.
    fn is_record(&self, key: &str) -> bool {
        let root = crate::records::etcd_key(&self.prefix, "");
        key.strip_prefix(&root)
            .is_some_and(|rest| crate::records::RecordKind::parse(rest).is_some())
    }
}

impl EtcdBackend {
    /// Every record under a prefix, by key; values that are not JSON are left out.
    pub async fn records(
        &self,
        prefix: &str,
    ) -> Result<BTreeMap<String, serde_json::Value>, BackendError> {
        let resp = self
            .client
            .clone()
            .get(prefix, Some(GetOptions::new().with_prefix()))
            .await
            .map_err(read_error)?;
        Ok(resp
            .kvs()
            .iter()
            .filter_map(|kv| {
                Some((
                    String::from_utf8_lossy(kv.key()).into_owned(),
                    serde_json::from_slice(kv.value()).ok()?,
                ))
            })
            .collect())
    }
}

/// The "directory" of a key: `/sluice/namespaces/` for `/sluice/namespaces/orders`.
fn parent(key: &str) -> &str {
    key.rfind('/').map_or("", |i| &key[..=i])
}

fn read_error(e: etcd_client::Error) -> BackendError {
    BackendError::Read {
        system: System::Etcd,
        message: readable(&e),
    }
}

#[async_trait]
impl Backend for EtcdBackend {
    fn system(&self) -> System {
        System::Etcd
    }

    async fn read(&self, wanted: &[Address]) -> Result<LiveState, BackendError> {
        let keys: BTreeSet<&str> = wanted
            .iter()
            .filter(|a| a.kind() == Kind::EtcdKey)
            .map(Address::name)
            .collect();
        let prefixes: BTreeSet<&str> = keys.iter().map(|k| parent(k)).collect();
        let mut live = LiveState::default();
        if prefixes.is_empty() {
            return Ok(live);
        }
        // One range read per prefix, all in one round trip.
        let ops: Vec<TxnOp> = prefixes
            .iter()
            .map(|p| TxnOp::get(*p, Some(GetOptions::new().with_prefix())))
            .collect();
        let resp = self
            .client
            .clone()
            .txn(Txn::new().and_then(ops))
            .await
            .map_err(read_error)?;
        for op in resp.op_responses() {
            let TxnOpResponse::Get(get) = op else {
                continue;
            };
            for kv in get.kvs() {
                let key = String::from_utf8_lossy(kv.key());
                if !keys.contains(key.as_ref()) {
                    continue;
                }
                // A value edited into something that is not JSON still compares, as a string.
                let value = serde_json::from_slice(kv.value()).unwrap_or_else(|_| {
                    serde_json::Value::String(String::from_utf8_lossy(kv.value()).into_owned())
                });
                live.resources.insert(
                    Address::etcd_key(&key),
                    LiveResource {
                        value: Value::Record(Record::new(&value)),
                        fingerprint: kv.mod_revision().to_string(),
                    },
                );
            }
        }
        Ok(live)
    }

    async fn apply(&self, changes: &[&Change], fence: &Fence) -> Vec<Result<(), BackendError>> {
        let mut results = Vec::with_capacity(changes.len());
        for chunk in changes.chunks(TXN_OPS) {
            let mut ops = Vec::with_capacity(chunk.len());
            let mut prepared: BTreeMap<usize, BackendError> = BTreeMap::new();
            for (i, c) in chunk.iter().enumerate() {
                if !self.is_record(c.address.name()) {
                    prepared.insert(
                        i,
                        BackendError::Rejected(format!(
                            "`{}` is not a record sluice writes: records live under `{}` in `namespaces/`, `grants/`, `alerts/` and `dr/`",
                            c.address.name(),
                            self.prefix
                        )),
                    );
                    continue;
                }
                match (c.action, &c.desired) {
                    (Action::Create | Action::Update, Some(Value::Record(json))) => {
                        ops.push(TxnOp::put(
                            c.address.name(),
                            json.text().as_bytes().to_vec(),
                            None,
                        ));
                    }
                    (Action::Delete, _) => ops.push(TxnOp::delete(c.address.name(), None)),
                    _ => {
                        prepared.insert(
                            i,
                            BackendError::Rejected(format!(
                                "{} is not an etcd record change",
                                c.address
                            )),
                        );
                    }
                }
            }
            let txn = Txn::new().when([fence_compare(fence)]).and_then(ops);
            let outcome = match self.client.clone().txn(txn).await {
                Ok(r) if r.succeeded() => Ok(()),
                Ok(_) => Err(BackendError::FenceLost),
                Err(e) => Err(BackendError::Rejected(format!(
                    "etcd transaction failed: {e}"
                ))),
            };
            for i in 0..chunk.len() {
                results.push(match prepared.remove(&i) {
                    Some(e) => Err(e),
                    None => outcome.clone(),
                });
            }
        }
        results
    }
}
