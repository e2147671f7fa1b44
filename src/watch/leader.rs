//! Leader election among watcher replicas, through an etcd lease: each
//! replica campaigns on `<prefix>leader/<env>` with a key on its own lease.
//! The leader's key goes with its lease, so when the leader dies another
//! replica takes over within the lease's TTL.
//!
//! A campaign blocks until it wins, so it runs on a client without a request
//! timeout, and a campaign that ends without winning (the connection cut,
//! etcd restarted) campaigns again for as long as the lease is held.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use etcd_client::Client;
use tokio::task::JoinHandle;

use crate::state::lease::{Held, Lease};

pub struct Leadership {
    is_leader: Arc<AtomicBool>,
    held: Held,
    /// Taken by [`Leadership::release`], to revoke it.
    lease: Option<Lease>,
    campaign: JoinHandle<()>,
}

impl Leadership {
    /// Grants a lease of `ttl` kept alive in the background, and campaigns
    /// for `election` as `id`; [`Leadership::is_leader`] turns true once won.
    /// `client` must have no request timeout: a campaign waits for as long
    /// as another replica leads.
    pub async fn start(
        client: Client,
        election: String,
        id: String,
        ttl: Duration,
    ) -> Result<Leadership, etcd_client::Error> {
        let lease = Lease::grant(client.clone(), ttl).await?;
        let is_leader = Arc::new(AtomicBool::new(false));
        let campaign = tokio::spawn(campaign(
            client,
            election,
            id,
            lease.id(),
            lease.held(),
            is_leader.clone(),
        ));
        Ok(Leadership {
            is_leader,
            held: lease.held(),
            lease: Some(lease),
            campaign,
        })
    }

    /// The lease is gone: this leadership can never lead again.
    pub fn finished(&self) -> bool {
        !self.held.is_held()
    }

    pub fn is_leader(&self) -> bool {
        self.is_leader.load(Ordering::SeqCst) && self.held.is_held()
    }

    /// Stops campaigning and revokes the lease: the election key goes at
    /// once, and another replica takes over without waiting for the TTL.
    pub async fn release(mut self) {
        self.campaign.abort();
        self.is_leader.store(false, Ordering::SeqCst);
        if let Some(lease) = self.lease.take()
            && let Err(e) = lease.revoke().await
        {
            tracing::warn!("could not revoke the election lease (it expires with its TTL): {e}");
        }
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        self.campaign.abort();
    }
}

/// Campaigns until it wins or the lease is lost; once won, leads until the
/// lease is lost.
async fn campaign(
    mut client: Client,
    election: String,
    id: String,
    lease: i64,
    held: Held,
    is_leader: Arc<AtomicBool>,
) {
    while held.is_held() {
        let won = tokio::select! {
            won = client.campaign(election.as_str(), id.as_str(), lease) => won,
            () = held.lost() => break,
        };
        match won {
            Ok(_) => {
                is_leader.store(true, Ordering::SeqCst);
                tracing::info!(election, id, "this replica is the leader");
                held.lost().await;
                break;
            }
            Err(e) => {
                tracing::warn!(
                    election,
                    "the campaign ended without winning; campaigning again: {e}"
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    if is_leader.swap(false, Ordering::SeqCst) {
        tracing::error!(
            lease,
            "the leader election lease was lost; this replica stands down"
        );
    }
}
