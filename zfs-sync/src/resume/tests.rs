use super::encode::{Encoding, encode_token};
use super::nvlist::DATA_TYPE_STRING;
use super::*;
use proptest::prelude::*;

/// Real tokens, with what `zfs send -nvP -t` printed for them (zrepl's test suite and an
/// OCaml nvlist library's test suite).
#[test]
fn decodes_real_tokens() {
    let full = decode_token(
        "1-9baebea70-b8-789c636064000310a500c4ec50360710e72765a52697303030419460caa7a515a79680647ce0f26c48f249\
         9525a9c5405ac3c90fabfe92fcf4d2cc140686b30972c7850efd0cd24092e704cbe725e6a632305415e5e797e803cd2ad14f7430\
         84b805001b201795",
    )
    .unwrap();
    assert_eq!(
        full,
        ResumeTokenInfo {
            version: 1,
            fromguid: None,
            toguid: Some(0x52f9c212c71e60cd),
            toname: Some("zroot/test/a@1".into()),
            object: 2,
            offset: 0x4c0000,
            bytes: 0x4e4228,
            flags: ResumeFlags::default(),
        }
    );
    let inc = decode_token(
        "1-ef01e717e-e0-789c636064000310a501c49c50360710a715e5e7a69766a63040c1d904b9e342877e062900d9ec48eaf293b2\
         52934b181898a0ea30e4d3d28a534b40323e70793624f9a4ca92d46220fdc1ce0fabfe927c882bc46c8a0a9f71ad3baf8124cf09\
         96cf4bcc4d6560a82acacf2fd1079a55a29fe86004710b00d8ae1f93",
    )
    .unwrap();
    assert_eq!(inc.fromguid, Some(0x52f9c212c71e60cd));
    assert_eq!(inc.toguid, Some(0xcfae0ae671723c16));
    assert_eq!(inc.toname.as_deref(), Some("zroot/test/a@2"));
    assert_eq!((inc.object, inc.offset, inc.bytes), (2, 0x4c0000, 0x4e3ef0));

    let other = decode_token(
        "1-badbdec4c-c0-789c636064000310a500c4ec50360710e72765a52697303028439460caa7a515a79630c001489e0d493ea9b2\
         24b518486fd0c2aebf243fbd343305a86edbd65e4f45a6650648f29c60f9bcc4dc54209d5b509556ec50945a9093a96b646064a0\
         6b60aa6b6006361300c1bf18b7",
    )
    .unwrap();
    assert_eq!(other.toname.as_deref(), Some("tmpzfs@repli-2020-05-06"));
    assert_eq!(other.toguid, Some(0xa60221498db5b662));
    assert_eq!((other.object, other.offset, other.bytes), (0x23, 0, 0x2ab0));

    let spaced = decode_token(
        "1-c41e551c7-c0-789c636064000310a500c4ec50360710e72765a5269740d80cd8e4d3d28a534b18e00024cf86249f5459925a\
         0ca47fec62c2aabf243fbd34338581e1da95456b763eeb58678024cf0996cf4bcc4d65602830d4071a54a2509e5992a1505c9098\
         9cea9004b31300818b1bfb",
    )
    .unwrap();
    assert_eq!(spaced.toname.as_deref(), Some("p1/test with space@b"));
    assert_eq!(spaced.toguid, Some(0xae88e6b9aca2d4d6));

    let raw = decode_token(
        "1-10a600a705-110-789c636064000310a500c4ec50360710e72765a5269740d80cd8e4d3d28a534b18e00024cf86249f545992\
         5a0ca46b1498b1ea2fc94f2fcd4c6160b0f16f096c31bd36d503499e132c9f97989bcac05054909f9fa39f919f9baa9f5cec909b\
         98579a98136f64606869606160116f60696861641a1f1ae28cec0e6e0684bf92f3730b8a528b8bf3b32162125077c2e48b12cb61\
         520c00d72d24d5",
    )
    .unwrap();
    assert_eq!(
        raw.toname.as_deref(),
        Some("rpool/home/cs@manual_20190808_091825_UTC")
    );
    assert_eq!(raw.toguid, Some(0x95d6358451844f3c));
    assert!(raw.flags.rawok, "{raw:?}");
}

#[test]
fn corrupt_real_token_is_refused() {
    // zrepl's "corrupted token": the last bytes of a real payload replaced.
    let e = decode_token(
        "1-bf31b879a-b8-789c636064000310a500c4ec50360710e72765a5269740f80cd8e4d3d28a534b18e00024cf86249f5459925a\
         cc802a8facbf243fbd3433858161f5ddb9ab1ae7c7466a20c97382e5f312735319180af2f3730cf58166953824c2cc0200cd1234\
         5",
    )
    .unwrap_err();
    assert!(matches!(e, ResumeTokenError::Format(_)), "{e:?}");
}

fn sample(fromguid: Option<u64>) -> ResumeTokenInfo {
    ResumeTokenInfo {
        version: 1,
        fromguid,
        toguid: Some(0xdead_beef_0123_4567),
        toname: Some("tank/a b:c@snap-1".into()),
        object: 17,
        offset: 1 << 40,
        bytes: 123_456_789,
        flags: ResumeFlags {
            embedok: true,
            compressok: true,
            rawok: false,
            largeblockok: true,
        },
    }
}

#[test]
fn encoded_tokens_round_trip_in_every_encoding() {
    for enc in [Encoding::NativeLittle, Encoding::NativeBig, Encoding::Xdr] {
        for info in [
            sample(None),
            sample(Some(42)),
            ResumeTokenInfo {
                version: 2,
                ..sample(Some(1))
            },
        ] {
            let token = encode_token(&info, enc);
            validate_token_chars(&token).unwrap();
            assert_eq!(decode_token(&token).unwrap(), info, "{enc:?} {token}");
        }
    }
}

#[test]
fn header_errors_are_named() {
    let good = encode_token(&sample(None), Encoding::NativeLittle);
    let (v, rest) = good.split_once('-').unwrap();
    let (ck, rest) = rest.split_once('-').unwrap();
    let (sz, payload) = rest.split_once('-').unwrap();
    assert_eq!(v, "1");
    type Check = fn(&ResumeTokenError) -> bool;
    let cases: Vec<(String, Check)> = vec![
        (String::new(), |e| matches!(e, ResumeTokenError::Format(_))),
        ("1-2-3".into(), |e| matches!(e, ResumeTokenError::Format(_))),
        (format!("3-{ck}-{sz}-{payload}"), |e| {
            matches!(e, ResumeTokenError::Version(3))
        }),
        (format!("1-{ck}-0-{payload}"), |e| {
            matches!(e, ResumeTokenError::Size(0))
        }),
        (format!("1-{ck}-100001-{payload}"), |e| {
            matches!(e, ResumeTokenError::Size(0x100001))
        }),
        (format!("1-{ck}-{sz}-{payload}0"), |e| {
            matches!(e, ResumeTokenError::Format(_))
        }),
        (format!("1-{ck}-{sz}-{}", payload.to_uppercase()), |e| {
            matches!(e, ResumeTokenError::Format(_))
        }),
        (format!("1-{ck}1-{sz}-{payload}"), |e| {
            matches!(e, ResumeTokenError::Checksum { .. })
        }),
        (
            format!(
                "1-{ck}-{:x}-{payload}",
                u64::from_str_radix(sz, 16).unwrap() - 1
            ),
            |e| matches!(e, ResumeTokenError::Payload(_)),
        ),
        (format!("1-{ck}-{sz}-{payload}-"), |e| {
            matches!(e, ResumeTokenError::Format(_))
        }),
        (format!("+1-{ck}-{sz}-{payload}"), |e| {
            matches!(e, ResumeTokenError::Format(_))
        }),
    ];
    for (token, check) in cases {
        let e = decode_token(&token).unwrap_err();
        assert!(check(&e), "{token}: {e:?}");
    }
    let core: Error = decode_token("x").unwrap_err().into();
    assert!(
        matches!(core, Error::InvalidInput { ref field, .. } if field == "resume_token"),
        "{core:?}"
    );
}

fn wrap(packed: &[u8]) -> String {
    encode::wrap_packed(1, packed, false)
}

#[test]
fn malformed_nvlists_are_errors() {
    let good = encode::pack(&sample(Some(5)), Encoding::NativeLittle);
    for cut in 0..good.len() {
        let e = decode_token(&wrap(&good[..cut])).unwrap_err();
        assert!(
            matches!(
                e,
                ResumeTokenError::Nvlist { .. } | ResumeTokenError::Size(0)
            ),
            "{cut}: {e:?}"
        );
    }
    let xdr = encode::pack(&sample(Some(5)), Encoding::Xdr);
    for cut in 0..xdr.len() {
        assert!(decode_token(&wrap(&xdr[..cut])).is_err(), "{cut}");
    }
    let mut bad = good.clone();
    bad[0] = 7;
    assert!(matches!(
        decode_token(&wrap(&bad)),
        Err(ResumeTokenError::Nvlist { offset: 0, .. })
    ));
    // A uint64 pair whose type says string.
    let mut bad = good.clone();
    bad[12 + 12] = DATA_TYPE_STRING as u8;
    assert!(decode_token(&wrap(&bad)).is_err());
    // Duplicate pairs are refused.
    let first_size = u32::from_le_bytes([good[12], good[13], good[14], good[15]]) as usize;
    let mut dup = good[..12 + first_size].to_vec();
    dup.extend_from_slice(&good[12..]);
    let e = decode_token(&wrap(&dup)).unwrap_err();
    assert!(e.to_string().contains("duplicate"), "{e}");
}

#[test]
fn inflating_past_the_declared_size_is_refused() {
    // A tiny payload that inflates to 4 MiB of zeros, declared as 100 bytes.
    use std::io::Write;
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(&vec![0u8; 4 << 20]).unwrap();
    let c = z.finish().unwrap();
    let hex: String = c.iter().map(|b| format!("{b:02x}")).collect();
    let token = format!("1-{:x}-64-{hex}", fletcher4_first_word(&c).0);
    let e = decode_token(&token).unwrap_err();
    assert!(
        matches!(e, ResumeTokenError::Payload(ref m) if m.contains("100+")),
        "{e:?}"
    );
}

#[test]
fn token_characters() {
    assert!(validate_token_chars("1-abc-10-789c").is_ok());
    for bad in [
        "",
        "1-ABC",
        "1-abc;reboot",
        "1 abc",
        "1-abc\n",
        "$(x)",
        "1-abc'",
    ] {
        let e = validate_token_chars(bad).unwrap_err();
        assert!(
            matches!(e, Error::InvalidInput { ref field, .. } if field == "resume_token"),
            "{bad:?}"
        );
    }
    assert!(validate_token_chars(&"a".repeat(MAX_TOKEN_LEN + 1)).is_err());
}

proptest! {
    #[test]
    fn arbitrary_strings_never_panic(s in "[0-9a-f-]{0,200}") {
        let _ = decode_token(&s);
    }

    #[test]
    fn arbitrary_nvlists_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = decode_token(&wrap(&bytes));
    }

    #[test]
    fn arbitrary_infos_round_trip(
        fromguid in proptest::option::of(any::<u64>()),
        toguid in proptest::option::of(any::<u64>()),
        toname in proptest::option::of("[ -~]{0,80}"),
        object in any::<u64>(), offset in any::<u64>(), bytes in any::<u64>(),
        flags in any::<[bool; 4]>(),
        version in 1u32..=2,
        enc in 0usize..3,
    ) {
        let info = ResumeTokenInfo {
            version, fromguid, toguid, toname, object, offset, bytes,
            flags: ResumeFlags { embedok: flags[0], compressok: flags[1], rawok: flags[2], largeblockok: flags[3] },
        };
        let enc = [Encoding::NativeLittle, Encoding::NativeBig, Encoding::Xdr][enc];
        prop_assert_eq!(decode_token(&encode_token(&info, enc)).unwrap(), info);
    }
}
