//! `sluice watch`: runs the watcher until SIGTERM or SIGINT, then exits 0.

use std::sync::Arc;

use super::{Error, Exit, runtime};
use crate::watch::{Options, Shutdown, run as watch};

pub fn run(opts: Options) -> Result<Exit, Error> {
    runtime().block_on(async {
        let shutdown = Arc::new(Shutdown::default());
        on_signal(shutdown.clone());
        watch(opts, shutdown).await?;
        Ok(Exit::Success)
    })
}

/// SIGTERM or SIGINT: finish the cycle in progress, then stop.
fn on_signal(shutdown: Arc<Shutdown>) {
    use tokio::signal::unix::{SignalKind, signal};
    if let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        tokio::spawn(async move {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            tracing::info!("stopping: finishing the cycle in progress");
            shutdown.trigger();
        });
    }
}
