//! Any input either fails validation or parses, formats back identically and re-parses equal;
//! a valid name never holds a byte outside the ZFS character set (so never `%`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use zfs_sync::names::{
    BookmarkName, DatasetName, MAX_NAME_LEN, PoolName, ShortName, SnapshotName, ZfsName,
    check_reported_dataset,
};

fn zfs_chars(s: &str) -> bool {
    s.bytes().all(|b| {
        b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b':' | b' ' | b'/' | b'@' | b'#')
    })
}

macro_rules! round_trip {
    ($ty:ty, $s:expr) => {
        match <$ty>::parse($s) {
            Ok(n) => {
                let text = n.to_string();
                assert_eq!(text, $s, "{} formats differently", stringify!($ty));
                assert_eq!(<$ty>::parse(&text).expect("re-parse"), n);
                assert!(text.len() <= MAX_NAME_LEN, "{text:?} is too long");
                assert!(zfs_chars(&text), "{text:?} holds a forbidden byte");
                true
            }
            Err(e) => {
                // The error must render (it is shown to users) and name a rule.
                assert!(!e.to_string().is_empty());
                false
            }
        }
    };
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let pool = round_trip!(PoolName, s);
    let dataset = round_trip!(DatasetName, s);
    let short = round_trip!(ShortName, s);
    let snapshot = round_trip!(SnapshotName, s);
    let bookmark = round_trip!(BookmarkName, s);
    let any = round_trip!(ZfsName, s);

    // Consistency between the types.
    if pool {
        assert!(dataset, "pool {s:?} is not a dataset");
    }
    if dataset {
        assert!(
            check_reported_dataset(s).is_ok(),
            "dataset {s:?} is not reportable"
        );
        let d = DatasetName::parse(s).unwrap();
        assert_eq!(DatasetName::from_parts(d.pool(), d.path()).unwrap(), d);
    }
    assert_eq!(any, dataset || snapshot || bookmark, "{s:?}");
    if snapshot {
        let n = SnapshotName::parse(s).unwrap();
        assert_eq!(SnapshotName::new(n.dataset(), n.snapshot()).unwrap(), n);
        assert!(!short, "{s:?} is both a snapshot and a short name");
    }
    // A name ZFS would accept as a reported dataset differs from a DatasetName only by `%`.
    if check_reported_dataset(s).is_ok() && !dataset {
        assert!(
            s.contains('%'),
            "{s:?} reportable but not a dataset, without '%'"
        );
    }
});
