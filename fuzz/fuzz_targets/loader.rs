//! The loader on any namespace file, beside the example workspace: it must
//! end with diagnostics, never a panic. Also the secret masking of it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice::desired::{Overrides, Selection, load};
use sluice::source::{SourceFile, SourceTree};

const WORKSPACE: &str = include_str!("../../examples/sluice.yaml");

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    let tree = SourceTree {
        workspace: Some(SourceFile {
            path: "sluice.yaml".into(),
            text: WORKSPACE.into(),
        }),
        namespaces: vec![SourceFile {
            path: "namespaces/fuzz.yaml".into(),
            text: text.clone(),
        }],
        ..SourceTree::default()
    };
    let _ = load(&tree, Selection::AllUnless(None), &Overrides::default());
    let _ = sluice::config::redact::mask(&text);
});
