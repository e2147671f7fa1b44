//! The operator's commands against the real servers: `--namespace`
//! targeting, `destroy`, `forget` and `unlock`.

use etcd_client::PutOptions;

use crate::common::TestRepo;
use crate::faults::OnTerminal;
use crate::pull_request::namespaces_of;
use crate::state::{addresses_of, ok, topics};

async fn etcd(repo: &TestRepo) -> etcd_client::Client {
    etcd_client::Client::connect([repo.services().etcd.as_str()], None)
        .await
        .unwrap()
}

/// A state record of the test's environment (`applied`, `locks`, `unlocked`).
async fn state_record(repo: &TestRepo, what: &str) -> Option<serde_json::Value> {
    let key = format!("{}{what}/local", repo.prefix());
    let got = etcd(repo).await.get(key, None).await.unwrap();
    got.kvs()
        .first()
        .map(|kv| serde_json::from_slice(kv.value()).unwrap())
}

#[test]
fn namespace_plans_applies_and_drifts_only_the_namespaces_named() {
    let repo = TestRepo::new();
    repo.namespace("a", &topics(&["a"]));
    repo.namespace("b", &topics(&["b"]));
    ok(&repo.run(&["apply", "--auto-approve"]));
    repo.namespace("a", &topics(&["a", "a2"]));
    repo.namespace("b", &topics(&["b", "b2"]));
    let (a, b) = (repo.name("a"), repo.name("b"));

    let plan = repo.run(&["plan", "--namespace", &a, "--format", "json"]);
    ok(&plan);
    let json = plan.json();
    assert_eq!(json["scope"], serde_json::json!([a]));
    assert_eq!(json["targets"], serde_json::json!([a]));
    assert_eq!(namespaces_of(&json), [a.as_str()]);
    let text = repo.run(&["plan", "--namespace", &a]);
    assert!(
        text.stdout.contains("named with `--namespace`"),
        "{}",
        text.stdout
    );

    // A typo is an error that names the closest namespace.
    let typo = repo.run(&["plan", "--namespace", &format!("{a}x")]);
    assert_eq!(typo.code, 1, "{}", typo.all_output());
    assert!(
        typo.stderr.contains(&format!(
            "there is no namespace `{a}x` (did you mean `{a}`?)"
        )),
        "{}",
        typo.stderr
    );

    // A saved plan keeps its scope; `show` and `apply` take it from the file.
    let saved = repo.dir.path().join("a.json");
    ok(&repo.run(&["plan", "--namespace", &a, "--out", saved.to_str().unwrap()]));
    let shown = repo.run(&["show", saved.to_str().unwrap()]);
    ok(&shown);
    assert!(shown.stdout.contains("named with `--namespace`"));
    ok(&repo.run(&["apply", saved.to_str().unwrap()]));
    assert!(repo.has_topic("a2"));
    assert!(!repo.has_topic("b2"), "`b` is outside the plan's scope");

    let drift = repo.run(&["drift", "--namespace", &b, "--format", "json"]);
    assert_eq!(drift.code, 2, "{}", drift.all_output());
    assert_eq!(namespaces_of(&drift.json()), [b.as_str()]);
    let none = repo.run(&["drift", "--namespace", &a]);
    assert_eq!(none.code, 0, "{}", none.all_output());

    ok(&repo.run(&["apply", "--namespace", &b, "--auto-approve"]));
    assert!(repo.has_topic("b2"));
    ok(&repo.run(&["plan", "--detailed-exitcode"]));
}

#[test]
fn the_last_namespace_is_removed_by_name_and_the_guard_points_to_destroy() {
    let repo = TestRepo::new();
    repo.namespace("a", &topics(&["a"]));
    ok(&repo.run(&["apply", "--auto-approve"]));
    repo.remove_namespace("a");
    let refused = repo.run(&["plan"]);
    assert_eq!(refused.code, 1);
    assert!(refused.stderr.contains("refusing to plan their deletion"));
    assert!(
        refused.stderr.contains("sluice destroy") && refused.stderr.contains("--namespace"),
        "{}",
        refused.stderr
    );
    // Named, a namespace whose YAML is gone plans as deletes.
    let a = repo.name("a");
    let plan = repo.run(&["plan", "--namespace", &a, "--format", "json"]);
    ok(&plan);
    assert!(plan.json()["summary"]["delete"].as_u64().unwrap() >= 1);
    ok(&repo.run(&[
        "apply",
        "--namespace",
        &a,
        "--auto-approve",
        "--allow-delete",
    ]));
    assert!(!repo.has_topic("a"));
    ok(&repo.run(&["plan", "--detailed-exitcode"]));
}

#[tokio::test]
async fn destroy_deletes_everything_but_protected_namespaces_once_confirmed() {
    let repo = TestRepo::new();
    let p = repo.name("p");
    // `max_deletes: 1` bounds plans, not a destroy confirmed by name.
    repo.workspace(&format!(
        "  guards:\n    max_deletes: 1\n    protected_namespaces: [{p}]\n"
    ));
    repo.namespace("a", &topics(&["a", "a2"]));
    repo.namespace("p", &topics(&["p"]));
    ok(&repo.run(&["apply", "--auto-approve"]));

    let wrong = repo.run(&["destroy", "--confirm", "prod"]);
    assert_eq!(wrong.code, 1);
    assert!(repo.has_topic("a"));

    let done = repo.run(&["destroy", "--confirm", "local"]);
    ok(&done);
    assert!(
        done.stdout.contains("Destroy: every resource"),
        "{}",
        done.stdout
    );
    assert!(
        done.stdout
            .contains(&format!("protected namespace(s) `{p}`")),
        "{}",
        done.stdout
    );
    assert!(!repo.has_topic("a") && !repo.has_topic("a2"));
    assert!(repo.has_topic("p"), "a protected namespace is kept");
    let applied = state_record(&repo, "applied").await.unwrap();
    assert_eq!(applied["operation"], "destroy", "{applied}");
    assert_eq!(applied["status"], "complete", "{applied}");

    let again = repo.run(&["destroy", "--confirm", "local"]);
    ok(&again);
    assert!(
        again.stdout.contains("Nothing to destroy"),
        "{}",
        again.stdout
    );
}

#[tokio::test]
async fn forget_drops_entries_leaves_the_resources_and_records_it() {
    let repo = TestRepo::new();
    repo.namespace("a", &topics(&["a", "x"]));
    ok(&repo.run(&["apply", "--auto-approve"]));
    // `x` leaves the YAML: a plan would delete it, unless it is forgotten.
    repo.namespace("a", &topics(&["a"]));
    let x = format!("kafka.topic/{}", repo.name("x"));

    let typo = repo.run(&["forget", &format!("{x}x")]);
    assert_eq!(typo.code, 1);
    assert!(
        typo.stderr.contains(&format!("(did you mean `{x}`?)")),
        "{}",
        typo.stderr
    );

    let forgot = repo.run(&["forget", &x]);
    ok(&forgot);
    assert!(
        forgot.stdout.contains("Forgot 1 resource(s)"),
        "{}",
        forgot.stdout
    );
    let applied = state_record(&repo, "applied").await.unwrap();
    assert_eq!(applied["operation"], "forget", "{applied}");
    assert_eq!(applied["forgotten"], serde_json::json!([x]));
    let status = repo.run(&["status"]);
    assert!(
        status.stdout.contains("Last apply: forget at"),
        "{}",
        status.stdout
    );
    // The plan no longer touches `x` (only the registry record drops it),
    // so an apply without `--allow-delete` goes through.
    let plan = repo.run(&["plan", "--format", "json"]);
    ok(&plan);
    let touched = addresses_of(&plan.json());
    assert!(!touched.contains(&x), "{touched:?}");
    ok(&repo.run(&["apply", "--auto-approve"]));
    assert!(repo.has_topic("x"), "nothing live is deleted");

    // What the YAML still declares is adopted again: said so.
    let a = format!("kafka.topic/{}", repo.name("a"));
    let declared = repo.run(&["forget", &a]);
    ok(&declared);
    assert!(
        declared.stderr.contains("is still declared"),
        "{}",
        declared.stderr
    );

    // A protected namespace's entries need `--force`.
    ok(&repo.run(&["apply", "--auto-approve"]));
    ok(&repo.run(&["plan", "--detailed-exitcode"]));
    repo.workspace(&format!(
        "  guards:\n    protected_namespaces: [{}]\n",
        repo.name("a")
    ));
    let refused = repo.run(&["forget", &a]);
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains("protected namespace"),
        "{}",
        refused.stderr
    );
    ok(&repo.run(&["forget", &a, "--force"]));
}

#[tokio::test]
async fn unlock_names_the_holder_refuses_a_live_lease_and_records_a_forced_removal() {
    let repo = TestRepo::new();
    repo.namespace("a", &topics(&["a"]));
    let free = repo.run(&["unlock"]);
    ok(&free);
    assert!(free.stdout.contains("is not held"), "{}", free.stdout);

    // A holder on a live lease, as a stuck apply leaves it.
    let mut client = etcd(&repo).await;
    let lease = client.lease_grant(120, None).await.unwrap().id();
    let holder = serde_json::json!({
        "user": "stuck-ci", "host": "runner-7", "pid": 4242, "since": "2026-01-01T00:00:00Z"
    });
    let key = format!("{}locks/local", repo.prefix());
    client
        .put(
            key.as_str(),
            holder.to_string(),
            Some(PutOptions::new().with_lease(lease)),
        )
        .await
        .unwrap();

    let refused = repo.run(&["unlock"]);
    assert_eq!(refused.code, 1, "{}", refused.all_output());
    assert!(
        refused
            .stdout
            .contains("held by stuck-ci@runner-7 (pid 4242)"),
        "{}",
        refused.stdout
    );
    assert!(
        refused.stderr.contains("lease is live"),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("--force"), "{}", refused.stderr);
    assert!(state_record(&repo, "locks").await.is_some());
    let blocked = repo.run(&["apply", "--auto-approve"]);
    assert_eq!(blocked.code, 1);
    assert!(
        blocked.stderr.contains("stuck-ci@runner-7"),
        "{}",
        blocked.stderr
    );

    ok(&repo.run(&["unlock", "--force"]));
    assert!(state_record(&repo, "locks").await.is_none());
    let ttl = client.lease_time_to_live(lease, None).await.unwrap().ttl();
    assert_eq!(ttl, -1, "the holder's lease is revoked");
    let record = state_record(&repo, "unlocked").await.unwrap();
    assert_eq!(record["holder"]["user"], "stuck-ci", "{record}");
    assert!(record["by"]["user"].is_string(), "{record}");
    let status = repo.run(&["status", "--format", "json"]);
    assert_eq!(
        status.json()["last_unlock"]["holder"]["user"],
        "stuck-ci",
        "{}",
        status.stdout
    );
    ok(&repo.run(&["apply", "--auto-approve"]));
}

#[test]
fn destroy_on_a_terminal_deletes_only_once_the_environments_name_is_typed() {
    let repo = TestRepo::new();
    repo.namespace("a", &topics(&["a"]));
    ok(&repo.run(&["apply", "--auto-approve"]));
    const PROMPT: &str = "Type the environment's name to confirm:";
    for (typed, code, kept) in [("yes", Some(1), true), ("local", Some(0), false)] {
        let mut destroy = OnTerminal::spawn(repo.sluice().arg("destroy"));
        destroy.wait_for(PROMPT);
        destroy.type_line(typed);
        assert_eq!(destroy.exit_code(), code, "typed `{typed}`");
        assert_eq!(repo.has_topic("a"), kept, "typed `{typed}`");
    }
}
