//! The alert condition parser on any text: an error or a condition, never a
//! panic or a stack overflow.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice::config::condition::{Scope, parse};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let scope = Scope {
        custom_metrics: &["queue_depth"],
        has_capacity: true,
        has_rpo: true,
    };
    let _ = parse(&text, &scope);
});
