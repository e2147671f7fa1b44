//! Which namespace files may bear on a plan of a few namespaces, found by
//! their text, without parsing them: a file that spells none of the scope's
//! names (namespaces, topics, consumer groups, buckets) can neither collide
//! with the scope nor share a bucket with it.

use std::collections::BTreeSet;

use aho_corasick::{AhoCorasick, AhoCorasickKind};

use super::SourceFile;

/// The indices of `files` whose text holds one of `words`, or that may
/// spell a name other than literally: any backslash (a double-quoted escape
/// or line continuation) or `!` (a tag: `!!binary b3JkZXJz` is `orders`,
/// and so is `!<tag:yaml.org,2002:%62inary> b3JkZXJz`) makes a file a
/// candidate.
pub fn naming(files: &[SourceFile], words: &BTreeSet<String>) -> Vec<usize> {
    let words: Vec<&str> = words
        .iter()
        .filter(|w| !w.is_empty())
        // A consumer group may hold a space, which YAML may fold over
        // lines, or a `'`, which a single-quoted scalar doubles: the
        // longest piece between them is spelled as it is.
        .map(|w| {
            w.split(|c: char| c.is_whitespace() || c == '\'')
                .max_by_key(|p| p.len())
                .unwrap_or(w)
        })
        .collect();
    if words.is_empty() {
        return Vec::new();
    }
    // A DFA: the fastest search, and a few names keep it small.
    let search = AhoCorasick::builder()
        .kind(Some(AhoCorasickKind::DFA))
        .build(&words)
        .expect("a few names make a small automaton");
    files
        .iter()
        .enumerate()
        .filter(|(_, f)| f.text.contains(['\\', '!']) || search.is_match(&f.text))
        .map(|(i, _)| i)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> SourceFile {
        SourceFile {
            path: "namespaces/x.yaml".into(),
            text: text.into(),
        }
    }

    fn words(w: &[&str]) -> BTreeSet<String> {
        w.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn finds_files_that_spell_a_name_and_skips_the_rest() {
        let files = [
            file("metadata:\n  name: orders\n"),
            file("topics:\n  - name: payments\n"),
            file("bucket: shared-dr\n"),
            file("name: \"ord\\x65rs\"\n"),
            file("name: !!binary b3JkZXJz\n"),
            file("name: !<tag:yaml.org,2002:%62inary> b3JkZXJz\n"),
        ];
        let found = naming(&files, &words(&["orders", "shared-dr"]));
        // The escaped and the base64 spellings may be `orders`: they are
        // parsed, not guessed.
        assert_eq!(found, vec![0, 2, 3, 4, 5]);
        assert_eq!(naming(&files[1..], &words(&["orders"])), vec![2, 3, 4]);
        assert!(naming(&files, &BTreeSet::new()).is_empty());
    }

    #[test]
    fn a_name_with_a_space_or_quote_is_found_folded_or_doubled() {
        // The first two parse as the group `night shift`, the third as
        // `night's shift`.
        let files = [
            file("consumers:\n  - group: night\n      shift\n"),
            file("consumers:\n  - group: \"night\n      shift\"\n"),
            file("consumers:\n  - group: 'night''s shift'\n"),
            file("consumers:\n  - group: day\n"),
        ];
        assert_eq!(naming(&files, &words(&["night shift"])), vec![0, 1, 2]);
        assert_eq!(naming(&files[2..], &words(&["night's shift"])), vec![0]);
    }
}
