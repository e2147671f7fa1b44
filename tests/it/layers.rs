//! The crate reads top-down: no top-level module imports from one that
//! imports it back, directly or through others. Read from the sources, so
//! a new circle fails here with the files that close it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::common::root;

/// Top-level module → the modules it names with `crate::`, and where.
type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

fn graph() -> Graph {
    let mut g = Graph::new();
    let src = root().join("src");
    visit(&src, &src, &mut g);
    g
}

fn visit(src: &Path, dir: &Path, g: &mut Graph) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            visit(src, &path, g);
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let rel = path
            .strip_prefix(src)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let module = rel
            .split('/')
            .next()
            .unwrap()
            .trim_end_matches(".rs")
            .to_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        // Unit tests may reach anywhere; the code they test may not.
        let code = text.split("#[cfg(test)]").next().unwrap();
        for line in code.lines() {
            let line = line.split("//").next().unwrap();
            for (at, _) in line.match_indices("crate::") {
                let name: String = line[at + "crate::".len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && name != module {
                    g.entry(module.clone())
                        .or_default()
                        .entry(name)
                        .or_default()
                        .insert(rel.clone());
                }
            }
        }
    }
}

/// A path from `from` back to `to`, if there is one.
fn path_between(g: &Graph, from: &str, to: &str) -> Option<Vec<String>> {
    let mut stack = vec![vec![from.to_owned()]];
    let mut seen = BTreeSet::new();
    while let Some(path) = stack.pop() {
        let last = path.last().unwrap();
        for next in g.get(last).into_iter().flat_map(|m| m.keys()) {
            let mut longer = path.clone();
            longer.push(next.clone());
            if next == to {
                return Some(longer);
            }
            if seen.insert(next.clone()) {
                stack.push(longer);
            }
        }
    }
    None
}

#[test]
fn no_module_imports_from_one_that_imports_it_back() {
    let g = graph();
    assert!(g.contains_key("plan") && g.contains_key("engine"), "{g:?}");
    let mut circles = Vec::new();
    for (module, uses) in &g {
        for (used, files) in uses {
            if let Some(back) = path_between(&g, used, module) {
                circles.push(format!(
                    "{module} -> {} (through {})",
                    back.join(" -> "),
                    files.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
    }
    assert!(
        circles.is_empty(),
        "import circles:\n{}",
        circles.join("\n")
    );
}

#[test]
fn the_plan_is_a_leaf_of_the_engine() {
    let g = graph();
    let plan: Vec<&String> = g["plan"].keys().collect();
    for upward in ["backend", "engine", "policy", "commands", "watch", "render"] {
        assert!(
            !g["plan"].contains_key(upward),
            "plan imports {upward}: {plan:?}"
        );
    }
}

/// The order README's Layout lists the modules in: each may import only
/// from those before it.
const ORDER: &[&str] = &[
    "files", "par", "diag", "source", "config", "desired", "records", "resource", "state", "plan",
    "backend", "policy", "engine", "import", "backup", "drill", "snapshot", "render", "watch",
    "schema", "cli", "commands",
];

#[test]
fn modules_import_only_from_those_before_them_in_the_layout() {
    let g = graph();
    let mut upward = Vec::new();
    for (module, uses) in &g {
        let Some(at) = ORDER.iter().position(|m| m == module) else {
            continue;
        };
        for (used, files) in uses {
            match ORDER.iter().position(|m| m == used) {
                Some(u) if u > at => upward.push(format!(
                    "{module} imports {used} (in {})",
                    files.iter().cloned().collect::<Vec<_>>().join(", ")
                )),
                Some(_) => {}
                None => upward.push(format!("{used} is not in README's Layout order")),
            }
        }
    }
    assert!(upward.is_empty(), "{}", upward.join("\n"));
}
