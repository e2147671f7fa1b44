//! An etcd lease kept alive in the background: the apply lock's and the
//! leader election's. A renewal that fails is retried until the lease's TTL
//! is actually at risk, so a blip of the network does not cost the lease;
//! once it is lost (expired, revoked, or not renewed in time) the flag every
//! writer checks turns, at once, and it never turns back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use etcd_client::Client;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Whether a lease is still held: shared by everything that must stop
/// writing when it goes.
#[derive(Clone, Debug, Default)]
pub struct Held {
    lost: Arc<AtomicBool>,
    gone: Arc<Notify>,
}

impl Held {
    pub fn is_held(&self) -> bool {
        !self.lost.load(Ordering::SeqCst)
    }

    /// Waits until the lease is lost.
    pub async fn lost(&self) {
        // Registered before the check, so a loss in between still wakes us.
        let notified = self.gone.notified();
        if !self.is_held() {
            return;
        }
        notified.await;
    }

    fn lose(&self) {
        self.lost.store(true, Ordering::SeqCst);
        self.gone.notify_waiters();
    }
}

/// A lease and its keep-alive.
pub struct Lease {
    id: i64,
    client: Client,
    held: Held,
    keep_alive: JoinHandle<()>,
}

impl Lease {
    /// Grants a lease of `ttl` (at least 2 s) and keeps it alive.
    pub async fn grant(mut client: Client, ttl: Duration) -> Result<Lease, etcd_client::Error> {
        let ttl_s = i64::try_from(ttl.as_secs().max(2)).unwrap_or(i64::MAX);
        let id = client.lease_grant(ttl_s, None).await?.id();
        let held = Held::default();
        let keep_alive = tokio::spawn(keep_alive(
            client.clone(),
            id,
            Duration::from_secs(ttl_s.unsigned_abs()),
            held.clone(),
        ));
        Ok(Lease {
            id,
            client,
            held,
            keep_alive,
        })
    }

    pub fn id(&self) -> i64 {
        self.id
    }

    /// The flag writers check; it turns when the lease is lost.
    pub fn held(&self) -> Held {
        self.held.clone()
    }

    /// Stops the keep-alive and revokes the lease: keys on it go at once.
    pub async fn revoke(mut self) -> Result<(), etcd_client::Error> {
        self.keep_alive.abort();
        self.held.lose();
        self.client.lease_revoke(self.id).await.map(|_| ())
    }
}

impl Drop for Lease {
    /// Without its keep-alive the lease will expire: nothing may rely on it.
    fn drop(&mut self) {
        self.keep_alive.abort();
        self.held.lose();
    }
}

/// Renews every third of the TTL. A failed renewal is retried every 200 ms
/// on a fresh keep-alive stream until only a safety margin of the TTL is
/// left since the last renewal etcd confirmed; then the lease counts as
/// lost, since etcd may expire it any moment. A renewal answered with TTL 0
/// means etcd already let it go.
async fn keep_alive(mut client: Client, id: i64, ttl: Duration, held: Held) {
    let period = (ttl / 3).max(Duration::from_millis(500));
    // Writers stop before etcd could expire the lease, not after.
    let deadline = ttl.saturating_sub(period / 2);
    // When the last confirmed renewal was sent: etcd counts the TTL from
    // then, or later.
    let mut renewed = Instant::now();
    let mut stream = None;
    loop {
        tokio::time::sleep(period).await;
        loop {
            let left = deadline.saturating_sub(renewed.elapsed());
            if left.is_zero() {
                tracing::error!(lease = id, "could not renew the lease in time");
                held.lose();
                return;
            }
            let sent = Instant::now();
            // A connection that hangs is no answer: give up on it before
            // the deadline, whatever the request timeout.
            let answer =
                tokio::time::timeout(left.min(period), renew(&mut client, id, &mut stream))
                    .await
                    .unwrap_or_else(|_| {
                        Err(etcd_client::Error::LeaseKeepAliveError(
                            "no answer to the renewal".into(),
                        ))
                    });
            match answer {
                Ok(ttl_left) if ttl_left > 0 => {
                    renewed = sent;
                    break;
                }
                Ok(_) => {
                    tracing::error!(lease = id, "etcd expired the lease");
                    held.lose();
                    return;
                }
                Err(e) => {
                    stream = None;
                    tracing::warn!(lease = id, "renewing the lease failed, retrying: {e}");
                    let left = deadline.saturating_sub(renewed.elapsed());
                    tokio::time::sleep(left.min(Duration::from_millis(200))).await;
                }
            }
        }
    }
}

type KeepAlive = (etcd_client::LeaseKeeper, etcd_client::LeaseKeepAliveStream);

/// One renewal on the open keep-alive stream (opened first when there is
/// none); the TTL etcd answers with.
async fn renew(
    client: &mut Client,
    id: i64,
    stream: &mut Option<KeepAlive>,
) -> Result<i64, etcd_client::Error> {
    if stream.is_none() {
        *stream = Some(client.lease_keep_alive(id).await?);
    }
    let (keeper, answers) = stream.as_mut().expect("opened above");
    keeper.keep_alive().await?;
    match answers.message().await? {
        Some(answer) => Ok(answer.ttl()),
        None => Err(etcd_client::Error::LeaseKeepAliveError(
            "the keep-alive stream ended".into(),
        )),
    }
}
