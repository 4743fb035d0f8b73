//! The `zfs list` / `zfs get` parsers never panic, agree with each other, and every line they
//! accept round-trips through the formatter.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zfs_sync::inventory::{
    format_snapshot_list, parse_inventory_list, parse_resume_tokens, parse_snapshot_list,
    parse_snapshot_list_partial,
};
use zfs_sync::resume::validate_token_chars;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let line_count = text.split('\n').count();

    let partial = parse_snapshot_list_partial(text);
    match parse_snapshot_list(text) {
        Ok(all) => {
            assert!(partial.errors.is_empty());
            assert_eq!(all, partial.snapshots);
        }
        Err(e) => {
            assert!(!partial.errors.is_empty());
            assert_eq!(e.total, partial.errors.len());
            assert_eq!(e.errors[..], partial.errors[..e.errors.len()]);
            let _ = zfs_sync::Error::from(e).to_string();
        }
    }
    for err in &partial.errors {
        assert!(
            err.line >= 1 && err.line <= line_count,
            "line {} of {line_count}",
            err.line
        );
    }
    for s in &partial.snapshots {
        s.validate().expect("accepted snapshots are valid");
        let text = format_snapshot_list(std::slice::from_ref(s));
        let back = parse_snapshot_list(&text).expect("formatted line parses");
        assert_eq!(&back[0], s, "{text:?}");
        assert_eq!(format_snapshot_list(&back), text);
    }

    // The whole-inventory form: what it accepts is valid, and a text of snapshot lines only
    // parses to the same snapshots as the snapshot parser.
    match parse_inventory_list(text) {
        Ok(inv) => {
            for d in &inv.datasets {
                d.validate().expect("accepted datasets are valid");
            }
            for t in &inv.resume_tokens {
                validate_token_chars(t.token.as_deref().expect("only tokens that are set"))
                    .expect("accepted tokens have safe characters");
            }
            if inv.datasets.is_empty() {
                assert_eq!(parse_snapshot_list(text).ok(), Some(inv.snapshots));
            }
        }
        Err(e) => assert!(e.errors.iter().all(|l| l.line >= 1 && l.line <= line_count)),
    }

    if let Ok(tokens) = parse_resume_tokens(text) {
        for t in tokens {
            if let Some(token) = &t.token {
                validate_token_chars(token).expect("accepted tokens have safe characters");
            }
            zfs_sync::names::check_reported_dataset(&t.dataset).expect("accepted names are valid");
        }
    }
});
