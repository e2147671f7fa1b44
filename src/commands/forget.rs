//! `sluice forget ADDRESS…`: stop managing resources, leaving them as they are.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Error, Exit, block_on, load_desired};
use crate::cli::Cli;
use crate::engine::EngineError;
use crate::engine::apply::release;
use crate::engine::forget::{Forget, forget};
use crate::resource::expand::expand;
use crate::state::Holder;
use crate::state::StateStore;

pub fn run(
    cli: &Cli,
    addresses: &[String],
    force: bool,
    lock_wait: Duration,
) -> Result<Exit, Error> {
    let (_, desired) = load_desired(cli, None)?;
    let holder = Holder::current();
    let dropped = block_on(async {
        let state = super::unlock::state_store(&desired.environment, cli.timeout).await?;
        let lock = state
            .lock(&holder, lock_wait)
            .await
            .map_err(EngineError::from)?;
        let what = Forget {
            addresses,
            guards: &desired.guards,
            force,
            user: &holder.user,
            environment: &desired.environment.name,
        };
        let result = forget(&state, lock.as_ref(), &what).await;
        release(lock).await;
        Ok::<_, Error>(result?)
    })?;
    let namespaces: BTreeMap<&str, usize> = dropped.values().fold(BTreeMap::new(), |mut m, e| {
        *m.entry(e.namespace.as_str()).or_default() += 1;
        m
    });
    println!(
        "Forgot {} resource(s) in environment `{}` ({}); nothing live was changed. sluice no longer manages or deletes them.",
        dropped.len(),
        desired.environment.name,
        namespaces
            .iter()
            .map(|(ns, n)| format!("{n} of `{ns}`"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    // What the YAML still declares comes back at the next apply.
    let resources = expand(&desired);
    for r in resources
        .iter()
        .filter(|r| dropped.contains_key(&r.address))
    {
        let at = r
            .source
            .as_ref()
            .map_or_else(String::new, |s| format!(" at {s}"));
        eprintln!(
            "warning: `{}` is still declared in namespace `{}`{at}: the next plan adopts it again when it matches the YAML, or blocks it when it differs. Remove it from the YAML to stop managing it.",
            r.address, r.namespace
        );
    }
    Ok(Exit::Success)
}
