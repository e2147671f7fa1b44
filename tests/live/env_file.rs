//! The servers' env file works as README says: `. .services/env` exports
//! sluice's overrides to the commands run after it.

use std::process::Command;

use crate::servers::shared;

#[test]
fn the_env_file_exports_its_variables_when_sourced_by_sh() {
    let s = shared();
    // A clean environment: only what sourcing the file exports reaches `env`.
    let out = Command::new("env")
        .args([
            "-i",
            "PATH=/usr/bin:/bin",
            "sh",
            "-c",
            ". \"$0\" && exec env",
        ])
        .arg(s.path())
        .output()
        .expect("sh runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exported = String::from_utf8_lossy(&out.stdout);
    for (name, value) in [
        ("SLUICE_ETCD_ENDPOINTS", &s.etcd),
        ("SLUICE_S3_ENDPOINT", &s.s3),
        ("SLUICE_KAFKA_BOOTSTRAP", &s.kafka),
    ] {
        let line = format!("{name}={value}");
        assert!(
            exported.lines().any(|l| l == line),
            "`{line}` is not exported by sourcing {}:\n{exported}",
            s.path().display()
        );
    }
    for name in [
        "SLUICE_RULES_DIR",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    ] {
        assert!(
            exported.lines().any(|l| l.starts_with(&format!("{name}="))),
            "{name} is not exported:\n{exported}"
        );
    }
}
