//! Resume token decoding never panics on arbitrary input, and tokens built by the encoder
//! decode to what was encoded.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use zfs_sync::resume::encode::{Encoding, encode_token, wrap_packed};
use zfs_sync::resume::{ResumeFlags, ResumeTokenInfo, decode_token, validate_token_chars};

#[derive(Arbitrary, Debug)]
struct Info {
    version: bool,
    fromguid: Option<u64>,
    toguid: Option<u64>,
    toname: Option<String>,
    object: u64,
    offset: u64,
    bytes: u64,
    flags: [bool; 4],
    encoding: u8,
}

fn check_decoded(token: &str) {
    if let Ok(info) = decode_token(token) {
        // Whatever decodes can go into a command as is.
        validate_token_chars(token).expect("decodable tokens have safe characters");
        assert!(info.version == 1 || info.version == 2);
    }
}

fuzz_target!(|data: &[u8]| {
    // 1. The raw input as a token.
    if let Ok(s) = std::str::from_utf8(data) {
        check_decoded(s);
    }
    // 2. The input as a packed nvlist inside a well-formed token, to reach the nvlist parser.
    if let Some((&first, rest)) = data.split_first() {
        check_decoded(&wrap_packed(1, rest, first & 1 == 1));
    }
    // 3. Structured: encode, decode, compare.
    let mut u = Unstructured::new(data);
    if let Ok(i) = Info::arbitrary(&mut u) {
        let info = ResumeTokenInfo {
            version: if i.version { 2 } else { 1 },
            fromguid: i.fromguid,
            toguid: i.toguid,
            // Strings are NUL-terminated in the native encoding.
            toname: i.toname.map(|s| s.replace('\0', "")),
            object: i.object,
            offset: i.offset,
            bytes: i.bytes,
            flags: ResumeFlags {
                embedok: i.flags[0],
                compressok: i.flags[1],
                rawok: i.flags[2],
                largeblockok: i.flags[3],
            },
        };
        let encoding = [Encoding::NativeLittle, Encoding::NativeBig, Encoding::Xdr]
            [usize::from(i.encoding % 3)];
        let token = encode_token(&info, encoding);
        assert_eq!(
            decode_token(&token).expect("encoded tokens decode"),
            info,
            "{token}"
        );
    }
});
