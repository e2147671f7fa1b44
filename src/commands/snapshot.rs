//! `sluice snapshot`: the environment's etcd to S3, per its `state_backup`.

use super::{Error, Exit, block_on, load_desired};
use crate::backend::s3::S3Backend;
use crate::cli::Cli;
use crate::snapshot::SnapshotError;
use crate::snapshot::take::{PART_BYTES, take};

pub fn run(cli: &Cli) -> Result<Exit, Error> {
    let (_tree, desired) = load_desired(cli, None)?;
    let env = &desired.environment;
    if env.state_backup.is_none() {
        return Err(SnapshotError::NotDeclared(env.name.clone()).into());
    }
    let Some(s3) = &env.s3 else {
        return Err(SnapshotError::NoS3(env.name.clone()).into());
    };
    block_on(async {
        let s3 = S3Backend::connect(s3, cli.timeout).await?;
        let taken = take(env, &s3, cli.timeout, PART_BYTES).await?;
        for w in &taken.warnings {
            eprintln!("warning: {w}");
        }
        let m = &taken.manifest;
        if taken.probed {
            eprintln!(
                "Preflight: wrote and deleted a probe object under `s3://{}/{}` (no snapshot was complete there).",
                taken.bucket,
                env.state_backup.as_ref().map_or("", |b| b.prefix.as_str())
            );
        }
        println!(
            "Snapshot of etcd for environment `{}` (etcd {}, revision {}): {} byte(s), sha256 {}; s3://{}/{}, manifest s3://{}/{}",
            env.name,
            m.etcd_version,
            m.revision,
            m.size,
            m.sha256,
            taken.bucket,
            m.object,
            taken.bucket,
            taken.manifest_key
        );
        Ok(Exit::Success)
    })
}
