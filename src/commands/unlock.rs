//! `sluice unlock [--force]`: who holds the environment's apply lock, and
//! its removal when forced. Only etcd is reached.

use super::{Error, Exit, block_on, load_desired};
use crate::cli::Cli;
use crate::engine::EngineError;
use crate::state::Holder;

pub fn run(cli: &Cli, force: bool) -> Result<Exit, Error> {
    let (_, desired) = load_desired(cli, None)?;
    let env = &desired.environment;
    block_on(async {
        let state = state_store(env, cli.timeout).await?;
        let me = Holder::current();
        let Some(lock) = state.lock_info().await.map_err(EngineError::from)? else {
            println!(
                "The apply lock of environment `{}` is not held; nothing to do.",
                env.name
            );
            return Ok(Exit::Success);
        };
        let holder = lock.describe(&me.host);
        let lease = match lock.ttl_s {
            Some(ttl) => format!("its lease has {ttl} s left, renewed while its holder runs"),
            None => "it is on no live lease".to_owned(),
        };
        println!(
            "The apply lock of environment `{}` is held by {holder}; {lease}.",
            env.name
        );
        if lock.is_live() && !force {
            return Err(Error::LockLive {
                env: env.name.clone(),
            });
        }
        let record = state
            .break_lock(&lock, &me)
            .await
            .map_err(EngineError::from)?;
        let stops = if lock.lease == 0 {
            ""
        } else {
            " Its lease is revoked: its holder writes nothing more."
        };
        println!(
            "Removed it; recorded as removed by {} at {} (`sluice status` shows it).{stops}",
            record.by.user, record.time
        );
        Ok(Exit::Success)
    })
}

/// sluice's state in the etcd of `env`, for the commands that need nothing
/// else (`unlock`, `forget`): they work while Kafka or S3 are down.
pub(super) async fn state_store(
    env: &crate::desired::Environment,
    timeout: std::time::Duration,
) -> Result<crate::state::etcd::EtcdState, Error> {
    let client = crate::backend::etcd::connect(&env.etcd, timeout).await?;
    Ok(crate::state::etcd::EtcdState::new(
        client,
        &env.etcd.prefix,
        &env.name,
    ))
}
