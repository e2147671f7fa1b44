//! A stable-Rust fuzzer for the loader and the condition parser: every
//! fixture and example is replayed, then mutated (bytes flipped, YAML and
//! condition tokens inserted, spans deleted, duplicated, truncated) from a
//! fixed seed, and each mutant is loaded in-process. Whatever the input,
//! loading must end with diagnostics, never a panic or an abort.
//!
//! `SLUICE_FUZZ_ITERATIONS` (default 1000) sets the number of mutants, and
//! `SLUICE_FUZZ_SEED` the seed; a failing input is written to
//! `target/fuzz-failure.yaml`. `fuzz/` holds the same targets for
//! `cargo fuzz`, coverage-guided, for longer runs.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use sluice::config::condition::{Scope, parse};
use sluice::desired::{Overrides, Selection, load};
use sluice::source::{SourceFile, SourceTree};

use crate::common::root;

/// What a mutation may insert: YAML structure and odd scalars, and the
/// condition language's tokens.
const TOKENS: &[&str] = &[
    ":",
    "- ",
    "{",
    "}",
    "[",
    "]",
    ",",
    "\"",
    "'",
    "\t",
    "\n",
    "\n  ",
    "#",
    "&a ",
    "*a",
    "!!str ",
    "!!binary ",
    "---\n",
    "...\n",
    "? ",
    "|\n",
    ">-\n",
    "${env:X}",
    "${file:/etc/passwd}",
    "~",
    "null",
    "1e400",
    "-1",
    "9999999999999999999999",
    "0x1F",
    "7dd",
    "1M",
    "30 days",
    "((((",
    "))))",
    " > ",
    " >= ",
    " * ",
    " / 0",
    "%",
    "ms",
    "p99_latency",
    "capacity",
    "rpo",
    "é",
    "\u{0}",
    "\u{feff}",
    "<<: *a\n",
];

/// xorshift64*: enough randomness to mutate, the same every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One mutant of `text`: one to four edits.
fn mutate(text: &str, rng: &mut Rng) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(6) {
            0 if !bytes.is_empty() => {
                let i = at.min(bytes.len() - 1);
                bytes[i] ^= 1 << rng.below(8);
            }
            1 | 2 => {
                let token = TOKENS[rng.below(TOKENS.len())].as_bytes();
                bytes.splice(at..at, token.iter().copied());
            }
            3 => {
                let end = (at + rng.below(40)).min(bytes.len());
                bytes.drain(at..end);
            }
            4 => {
                let end = (at + rng.below(80)).min(bytes.len());
                let copy = bytes[at..end].to_vec();
                bytes.splice(at..at, copy);
            }
            _ => bytes.truncate(at),
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml") {
            out.push(path);
        }
    }
}

/// Loads a tree of one workspace and one namespace file, as validate does.
fn load_tree(workspace: &str, namespace: &str) {
    let tree = SourceTree {
        workspace: Some(SourceFile {
            path: "sluice.yaml".into(),
            text: workspace.into(),
        }),
        namespaces: vec![SourceFile {
            path: "namespaces/fuzz.yaml".into(),
            text: namespace.into(),
        }],
        ..SourceTree::default()
    };
    let _ = load(&tree, Selection::AllUnless(None), &Overrides::default());
    let _ = sluice::config::redact::mask(namespace);
    let _ = sluice::config::redact::mask(workspace);
}

fn check(what: &str, input: &str, run: impl FnOnce()) {
    if catch_unwind(AssertUnwindSafe(run)).is_err() {
        let out = root().join("target/fuzz-failure.yaml");
        let _ = std::fs::write(&out, input);
        panic!("{what} panicked on the input in {}", out.display());
    }
}

#[test]
fn the_loader_and_the_condition_parser_survive_mutated_fixtures() {
    let iterations: usize = std::env::var("SLUICE_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let seed: u64 = std::env::var("SLUICE_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x005e_ed51);
    let mut files = Vec::new();
    yaml_files(&root().join("tests/fixtures"), &mut files);
    yaml_files(&root().join("examples"), &mut files);
    files.sort();
    let texts: Vec<String> = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    let workspace = std::fs::read_to_string(root().join("examples/sluice.yaml")).unwrap();
    let conditions: Vec<String> = texts
        .iter()
        .flat_map(|t| t.lines())
        .filter_map(|l| l.split("condition: ").nth(1))
        .map(|c| c.trim().trim_matches(['"', '\'', '}', ' ']).to_owned())
        .collect();
    assert!(texts.len() > 50 && conditions.len() > 10);

    // The fixtures as they are, then mutants of them.
    for text in &texts {
        check("loading a fixture", text, || load_tree(&workspace, text));
    }
    let scope = Scope {
        custom_metrics: &["queue_depth"],
        has_capacity: true,
        has_rpo: true,
    };
    let mut rng = Rng(seed);
    for _ in 0..iterations {
        let text = &texts[rng.below(texts.len())];
        let mutant = mutate(text, &mut rng);
        if rng.below(4) == 0 {
            let ws = mutate(&workspace, &mut rng);
            check("loading a mutated workspace", &ws, || load_tree(&ws, text));
        } else {
            check("loading a mutated namespace", &mutant, || {
                load_tree(&workspace, &mutant)
            });
        }
        let condition = mutate(&conditions[rng.below(conditions.len())], &mut rng);
        check("parsing a mutated condition", &condition, || {
            let _ = parse(&condition, &scope);
        });
    }
}
