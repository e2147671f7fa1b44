//! `sluice dr drill NS`: a restore drill of one namespace, into scratch
//! topics, measured against its RTO and RPO and recorded in etcd.

use std::sync::Arc;
use std::time::Duration;

use super::backup::{chosen, s3};
use super::{Error, Exit, block_on, load_desired, on_signal};
use crate::cli::Cli;
use crate::drill::{self, DrillError, Drilled, human_ms};
use crate::engine::apply::Interrupt;
use crate::engine::{EngineError, Target};

pub fn drill(cli: &Cli, namespace: &str, lock_wait: Duration) -> Result<Exit, Error> {
    let (_tree, desired) = load_desired(cli, None)?;
    let ns = chosen(&desired, &[namespace.to_owned()])?[0];
    let env = &desired.environment;
    let cancel = Arc::new(Interrupt::default());
    block_on(async {
        let target = Target::connect(env, cli.timeout).await?;
        let s3 = s3(cli, &desired).await?;
        {
            let cancel = cancel.clone();
            on_signal(move || {
                cancel.trigger();
                eprintln!(
                    "sluice: interrupted; stopping the drill after the object in flight, then deleting its scratch topics"
                );
            });
        }
        let drilled = drill::locked(ns, env, &target, &s3, &cancel, lock_wait, cli.timeout).await;
        target.leave();
        let (drilled, saved) = drilled?;
        print!("{}", describe(&drilled));
        saved.map_err(EngineError::from)?;
        Ok(if drilled.record.passed {
            Exit::Success
        } else {
            Exit::Failure
        })
    })
}

impl From<DrillError> for Error {
    fn from(e: DrillError) -> Self {
        match e {
            DrillError::Backup(e) => e.into(),
            DrillError::Connect(e) => e.into(),
            DrillError::State(e) => EngineError::from(e).into(),
        }
    }
}

/// The drill's outcome as people read it.
fn describe(d: &Drilled) -> String {
    let r = &d.record;
    let verdict = if r.passed { "PASSED" } else { "FAILED" };
    let mut out = format!(
        "Drill of namespace `{}`{}: {verdict}\n",
        r.namespace,
        if r.run.is_empty() {
            String::new()
        } else {
            format!(" from run {}", r.run)
        }
    );
    if let Some(f) = &r.failure {
        out.push_str(&format!("  failure: {f}\n"));
    }
    if d.verified {
        out.push_str(&format!(
            "  restored: {} record(s) from {} object(s) into {} scratch topic(s), counts match the manifests\n",
            r.records,
            d.objects,
            d.scratch.len()
        ));
        out.push_str(&format!(
            "  RTO: {} measured (start to verified restore), target {}\n",
            human_ms(r.rto_ms),
            r.rto_target_ms
                .map_or_else(|| "none declared".into(), human_ms)
        ));
    } else {
        out.push_str(&format!(
            "  restored: not verified ({} scratch topic(s) created)\n  RTO: not reached: the restore failed after {}, target {}\n",
            d.scratch.len(),
            human_ms(r.rto_ms),
            r.rto_target_ms.map_or_else(|| "none declared".into(), human_ms)
        ));
    }
    out.push_str(&format!(
        "  data age: {} (newest backup's read), RPO {}\n",
        human_ms(r.data_age_ms),
        r.rpo_ms.map_or_else(|| "none declared".into(), human_ms)
    ));
    out.push_str(&if d.left_behind.is_empty() {
        format!(
            "  scratch topics deleted: {}\n",
            if d.scratch.is_empty() {
                "none were created".to_owned()
            } else {
                d.scratch.join(", ")
            }
        )
    } else {
        format!(
            "  scratch topics LEFT BEHIND: {}\n",
            d.left_behind.join(", ")
        )
    });
    out
}
