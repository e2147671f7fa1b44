//! Leader election among watcher replicas, through an etcd lease: each
//! replica campaigns on `<prefix>leader/<env>` with a key on its own lease.
//! The leader's key goes with its lease, so when the leader dies another
//! replica takes over within the lease's TTL.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use etcd_client::Client;
use tokio::task::JoinHandle;

pub struct Leadership {
    is_leader: Arc<AtomicBool>,
    lease: i64,
    client: Client,
    tasks: Vec<JoinHandle<()>>,
}

impl Leadership {
    /// Grants a lease of `ttl` kept alive in the background, and campaigns
    /// for `election` as `id`; [`Leadership::is_leader`] turns true once won.
    pub async fn start(
        client: Client,
        election: String,
        id: String,
        ttl: Duration,
    ) -> Result<Leadership, etcd_client::Error> {
        let mut c = client.clone();
        let ttl_s = i64::try_from(ttl.as_secs().max(2)).unwrap_or(i64::MAX);
        let lease = c.lease_grant(ttl_s, None).await?.id();
        let is_leader = Arc::new(AtomicBool::new(false));

        let (mut keeper, mut stream) = c.lease_keep_alive(lease).await?;
        let lost = is_leader.clone();
        let period = Duration::from_secs(u64::try_from(ttl_s).unwrap_or(1) / 3)
            .max(Duration::from_millis(500));
        let keep_alive = tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let alive = match keeper.keep_alive().await {
                    Ok(()) => matches!(stream.message().await, Ok(Some(r)) if r.ttl() > 0),
                    Err(_) => false,
                };
                if !alive {
                    // Without the lease the election key is gone: stop leading.
                    lost.store(false, Ordering::SeqCst);
                    tracing::error!(
                        lease,
                        "the leader election lease expired; this replica stands down"
                    );
                    return;
                }
            }
        });

        let mut campaigner = client.clone();
        let won = is_leader.clone();
        let campaign = tokio::spawn(async move {
            match campaigner
                .campaign(election.as_str(), id.as_str(), lease)
                .await
            {
                Ok(_) => {
                    won.store(true, Ordering::SeqCst);
                    tracing::info!(election, id, "this replica is the leader");
                }
                Err(e) => tracing::error!(election, "the leader election failed: {e}"),
            }
        });
        Ok(Leadership {
            is_leader,
            lease,
            client,
            tasks: vec![keep_alive, campaign],
        })
    }

    /// The lease is gone: this leadership can never lead again.
    pub fn finished(&self) -> bool {
        self.tasks[0].is_finished()
    }

    pub fn is_leader(&self) -> bool {
        self.is_leader.load(Ordering::SeqCst)
    }

    /// Stops campaigning and revokes the lease: the election key goes at
    /// once, and another replica takes over without waiting for the TTL.
    pub async fn release(mut self) {
        for t in &self.tasks {
            t.abort();
        }
        self.is_leader.store(false, Ordering::SeqCst);
        if let Err(e) = self.client.lease_revoke(self.lease).await {
            tracing::warn!("could not revoke the election lease (it expires with its TTL): {e}");
        }
    }
}
