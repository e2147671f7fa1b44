//! The source index: the names each namespace file declares, by the file's
//! Git blob id. A pull request's plan looks up there the few unchanged
//! files that bear on its change (a name they share, a bucket) and reads
//! only those, instead of every file of the repository.
//!
//! Apply writes it, from the files it read whole, under the lock. It is
//! kept for one set of files, named by the digest of their blob ids: a
//! pull request whose base holds other files (one merged since the last
//! apply) reads every file, as it would without an index. Blob ids name
//! content, so what the index says of a blob is true whoever computed it.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::parse::parse_namespaces;
use crate::source::{SourceTree, blob_digest, blob_id};

/// The names of a set of namespace files.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SourceIndex {
    /// The [`blob_digest`] of the files' blob ids.
    pub digest: String,
    /// Per blob id, every name its namespaces declare
    /// ([`crate::config::Namespace::names`]).
    pub blobs: BTreeMap<String, BTreeSet<String>>,
}

impl SourceIndex {
    /// The index of every namespace file of `tree`; none when the tree is
    /// only some of them, or when a file does not parse (its names are not
    /// known).
    pub fn of(tree: &SourceTree) -> Option<SourceIndex> {
        if tree.partial {
            return None;
        }
        let (docs, diags) = parse_namespaces(&tree.namespaces);
        if diags.iter().any(|d| d.is_error()) {
            return None;
        }
        let mut names: BTreeMap<&str, BTreeSet<String>> = tree
            .namespaces
            .iter()
            .map(|f| (f.path.as_str(), BTreeSet::new()))
            .collect();
        for doc in &docs {
            if let Some(of_file) = names.get_mut(doc.file.as_str()) {
                of_file.extend(doc.value.names());
            }
        }
        let mut blobs: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for file in &tree.namespaces {
            let words = names.remove(file.path.as_str()).unwrap_or_default();
            blobs
                .entry(blob_id(file.text.as_bytes()))
                .or_default()
                .extend(words);
        }
        Some(SourceIndex {
            digest: blob_digest(blobs.keys().map(String::as_str)),
            blobs,
        })
    }

    /// The digest an index of `tree`'s namespace files has, found without
    /// parsing them.
    pub fn digest_of(tree: &SourceTree) -> String {
        let ids: Vec<String> = tree
            .namespaces
            .iter()
            .map(|f| blob_id(f.text.as_bytes()))
            .collect();
        blob_digest(ids.iter().map(String::as_str))
    }

    /// The blobs that declare one of `words`.
    pub fn naming(&self, words: &BTreeSet<String>) -> BTreeSet<String> {
        self.blobs
            .iter()
            .filter(|(_, names)| !names.is_disjoint(words))
            .map(|(blob, _)| blob.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceFile;

    fn file(path: &str, text: &str) -> SourceFile {
        SourceFile {
            path: path.into(),
            text: text.into(),
        }
    }

    fn namespace(name: &str, topics: &[&str], bucket: Option<&str>) -> String {
        let mut text = format!(
            "apiVersion: sluice/v1\nkind: Namespace\nmetadata:\n  name: {name}\n  owner: team\nspec:\n  topics:\n"
        );
        for t in topics {
            text.push_str(&format!("    - name: {t}\n"));
        }
        if let Some(b) = bucket {
            text.push_str(&format!(
                "  disaster_recovery:\n    backup:\n      bucket: {b}\n"
            ));
        }
        text
    }

    fn words(w: &[&str]) -> BTreeSet<String> {
        w.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_blob_is_found_by_every_name_it_declares_and_by_no_other() {
        let a = namespace("alpha", &["orders.dlq"], Some("shared-dr"));
        let tree = SourceTree {
            namespaces: vec![
                file("namespaces/a.yaml", &a),
                file("namespaces/b.yaml", &namespace("beta", &["payments"], None)),
                file("namespaces/empty.yaml", ""),
            ],
            ..SourceTree::default()
        };
        let index = SourceIndex::of(&tree).expect("every file parses");
        let a_id = blob_id(a.as_bytes());
        assert_eq!(index.blobs.len(), 3);
        // Its namespace, topic, the stem a `dlq: true` would make, and bucket.
        for w in ["alpha", "orders.dlq", "orders", "shared-dr"] {
            assert_eq!(index.naming(&words(&[w])), [a_id.clone()].into(), "{w}");
        }
        assert!(index.naming(&words(&["order", "shared"])).is_empty());
        // The digest is of the set of blobs, whatever the paths and order.
        let mut moved = tree.clone();
        moved.namespaces.reverse();
        moved.namespaces[0].path = "namespaces/elsewhere.yaml".into();
        assert_eq!(SourceIndex::of(&moved).unwrap().digest, index.digest);
        assert_eq!(SourceIndex::digest_of(&tree), index.digest);
        let mut edited = tree.clone();
        edited.namespaces[2].text = "# nothing\n".into();
        assert_ne!(SourceIndex::of(&edited).unwrap().digest, index.digest);
    }

    /// The names the index holds of a file, each kind once. When they
    /// change, bump `INDEX_NAMES` (source/git.rs): an index of the old
    /// names would otherwise be taken as whole.
    #[test]
    fn the_names_held_of_a_file_are_every_kind_of_name_it_declares() {
        let text = "apiVersion: sluice/v1\nkind: Namespace\nmetadata:\n  name: alpha\nspec:\n  topics:\n    - name: orders\n      dlq: true\n    - name: audit.dlq\n    - {}\n  consumers:\n    - group: billing\n  disaster_recovery:\n    backup:\n      bucket: backups\n    replication:\n      bucket: replica\n      region: eu-west-1\n";
        let tree = SourceTree {
            namespaces: vec![file("namespaces/a.yaml", text)],
            ..SourceTree::default()
        };
        let index = SourceIndex::of(&tree).expect("the file parses");
        let names: Vec<&str> = index.blobs[&blob_id(text.as_bytes())]
            .iter()
            .map(String::as_str)
            .collect();
        assert_eq!(
            names,
            [
                "alpha",
                "audit",
                "audit.dlq",
                "backups",
                "billing",
                "orders",
                "replica"
            ]
        );
    }

    #[test]
    fn the_digest_says_which_names_the_index_holds() {
        let tree = SourceTree {
            namespaces: vec![file("namespaces/a.yaml", &namespace("alpha", &["x"], None))],
            ..SourceTree::default()
        };
        // The digest of the blob ids alone: what an index of the same files
        // holding other names (another sluice's) would be found by.
        let id = blob_id(tree.namespaces[0].text.as_bytes());
        let of_ids_alone = blob_id(format!("{id}\n").as_bytes());
        assert_ne!(SourceIndex::digest_of(&tree), of_ids_alone);
        assert_eq!(
            SourceIndex::of(&tree).unwrap().digest,
            SourceIndex::digest_of(&tree)
        );
    }

    #[test]
    fn no_index_of_some_files_or_of_a_file_that_does_not_parse() {
        let good = file("namespaces/a.yaml", &namespace("alpha", &["x"], None));
        let bad = file("namespaces/b.yaml", "kind: Namespace\nspec: [\n");
        let tree = SourceTree {
            namespaces: vec![good.clone(), bad],
            ..SourceTree::default()
        };
        assert_eq!(SourceIndex::of(&tree), None);
        let partial = SourceTree {
            namespaces: vec![good],
            partial: true,
            ..SourceTree::default()
        };
        assert_eq!(SourceIndex::of(&partial), None);
    }
}
