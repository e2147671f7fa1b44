//! `sluice watch`: runs the watcher until SIGTERM or SIGINT, then exits 0.

use std::sync::Arc;

use super::{Error, Exit, block_on, on_signal};
use crate::engine::apply::Interrupt;
use crate::watch::{Options, run as watch};

pub fn run(opts: Options) -> Result<Exit, Error> {
    block_on(async {
        let shutdown = Arc::new(Interrupt::default());
        // SIGTERM or SIGINT: finish the cycle in progress, then stop.
        let stop = shutdown.clone();
        on_signal(move || {
            tracing::info!("stopping: finishing the cycle in progress");
            stop.trigger();
        });
        watch(opts, shutdown).await?;
        Ok(Exit::Success)
    })
}
