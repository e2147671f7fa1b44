//! The example GitHub Actions workflow: its jobs and steps, and its sluice
//! commands parsed with the real CLI. `tests/live/workflow.rs` checks the
//! whole file against GitHub's workflow schema.

use serde_json::Value;

fn workflow() -> Value {
    let text =
        std::fs::read_to_string(crate::common::root().join("examples/ci/github-actions.yml"))
            .unwrap();
    serde_saphyr::from_str(&text).unwrap()
}

/// The `run` scripts of a job's steps, with `${{ … }}` expressions replaced
/// and continued lines joined.
fn scripts(job: &Value) -> Vec<String> {
    let expr = regex::Regex::new(r"\$\{\{[^}]*\}\}").unwrap();
    job["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|step| step["run"].as_str())
        .map(|run| {
            expr.replace_all(&run.replace("\\\n", " "), "X")
                .into_owned()
        })
        .collect()
}

/// Every command line of the workflow that runs `sluice`, as words.
fn workflow_commands() -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for job in workflow()["jobs"].as_object().unwrap().values() {
        for script in scripts(job) {
            for line in script.lines() {
                let line = line.trim();
                if !line.starts_with("sluice ") {
                    continue;
                }
                let words: Vec<String> = line
                    .split_whitespace()
                    .take_while(|w| !w.starts_with(['>', '|', '&']) && !w.starts_with("2>"))
                    .map(|w| w.trim_matches('"').to_owned())
                    .collect();
                out.push(words);
            }
        }
    }
    out
}

#[test]
fn the_example_workflow_runs_valid_sluice_commands() {
    use clap::Parser;
    let commands = workflow_commands();
    let joined: Vec<String> = commands.iter().map(|c| c.join(" ")).collect();
    for wanted in [
        "sluice validate",
        "sluice plan --all-environments --base",
        "sluice apply --reviewed plans",
        "sluice drift --format markdown",
    ] {
        assert!(
            joined.iter().any(|c| c.starts_with(wanted)),
            "no `{wanted}` in {joined:?}"
        );
    }
    // The merge job never applies what nobody reviewed.
    assert!(
        !joined.iter().any(|c| c.contains("--auto-approve")),
        "an unreviewed apply in {joined:?}"
    );
    for c in &commands {
        if let Err(e) = sluice::cli::Cli::try_parse_from(c) {
            panic!("`{}` is not a valid sluice command: {e}", c.join(" "));
        }
    }
}

#[test]
fn the_example_workflow_builds_once_and_checks_drift_on_a_schedule() {
    let wf = workflow();
    let jobs = wf["jobs"].as_object().unwrap();
    // One build job installs the packages the build reads, caches the cargo
    // build, and hands the binary to every other job.
    let build = scripts(&jobs["build"]).join("\n");
    for package in [
        "protobuf-compiler",
        "libprotobuf-dev",
        "libssl-dev",
        "pkg-config",
    ] {
        assert!(build.contains(package), "the build installs no {package}");
    }
    let uses = |job: &Value| -> Vec<String> {
        job["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["uses"].as_str().map(str::to_owned))
            .collect()
    };
    assert!(
        uses(&jobs["build"])
            .iter()
            .any(|u| u.starts_with("actions/cache@")),
        "the cargo build is not cached"
    );
    for (name, job) in jobs.iter().filter(|(name, _)| *name != "build") {
        assert_eq!(
            job["needs"], "build",
            "job {name} does not wait for the build"
        );
        assert!(
            uses(job)
                .iter()
                .any(|u| u.starts_with("actions/download-artifact@")),
            "job {name} does not download the built binary"
        );
        assert!(
            !scripts(job).join("\n").contains("cargo install"),
            "job {name} builds sluice again"
        );
    }
    // Drift runs on a cron, fails the job on drift or error, and writes the
    // report to the job summary.
    let crons: Vec<&str> = wf["on"]["schedule"]
        .as_array()
        .expect("a schedule trigger")
        .iter()
        .map(|s| s["cron"].as_str().unwrap())
        .collect();
    assert_eq!(crons.len(), 1, "{crons:?}");
    assert_eq!(crons[0].split_whitespace().count(), 5, "{crons:?}");
    let drift = &jobs["drift"];
    assert!(
        drift["if"]
            .as_str()
            .unwrap()
            .contains("github.event_name == 'schedule'")
    );
    let script = scripts(drift).join("\n");
    assert!(script.contains(">> \"$GITHUB_STEP_SUMMARY\""), "{script}");
    assert!(script.contains("exit 1"), "{script}");
}

#[test]
fn the_merge_job_finds_the_reviewed_plan_by_pull_request_number_not_by_sha() {
    let wf = workflow();
    let text = serde_json::to_string(&wf["jobs"]).unwrap();
    assert!(
        text.contains("sluice-plan-pr-${{ github.event.pull_request.number }}"),
        "the plan job names its artifact by pull request number"
    );
    assert!(
        text.contains("listPullRequestsAssociatedWithCommit"),
        "{text}"
    );
    assert!(
        !text.contains("head_sha: context.sha"),
        "the merge job still looks the plan up by the merged SHA"
    );
}
