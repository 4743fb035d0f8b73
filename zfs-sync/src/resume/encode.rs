//! Encodes a token as OpenZFS does (used by tests and the fuzz seed corpus).

use std::io::Write;

use super::nvlist::*;
use super::*;

/// How to pack the nvlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    NativeLittle,
    NativeBig,
    Xdr,
}

enum V<'a> {
    U64(u64),
    Str(&'a str),
    Flag,
}

fn pairs(info: &ResumeTokenInfo) -> Vec<(&'static str, V<'_>)> {
    // The order `get_receive_resume_token` adds them in.
    let mut v = Vec::new();
    if let Some(g) = info.fromguid {
        v.push(("fromguid", V::U64(g)));
    }
    v.push(("object", V::U64(info.object)));
    v.push(("offset", V::U64(info.offset)));
    v.push(("bytes", V::U64(info.bytes)));
    if let Some(g) = info.toguid {
        v.push(("toguid", V::U64(g)));
    }
    if let Some(n) = &info.toname {
        v.push(("toname", V::Str(n)));
    }
    for (on, name) in [
        (info.flags.largeblockok, "largeblockok"),
        (info.flags.embedok, "embedok"),
        (info.flags.compressok, "compressok"),
        (info.flags.rawok, "rawok"),
    ] {
        if on {
            v.push((name, V::Flag));
        }
    }
    v
}

fn pad(buf: &mut Vec<u8>, to: usize) {
    while !buf.len().is_multiple_of(to) {
        buf.push(0);
    }
}

/// Packs the token's nvlist.
pub fn pack(info: &ResumeTokenInfo, encoding: Encoding) -> Vec<u8> {
    let mut out = Vec::new();
    match encoding {
        Encoding::NativeLittle | Encoding::NativeBig => {
            let le = encoding == Encoding::NativeLittle;
            let u32b = |v: u32| if le { v.to_le_bytes() } else { v.to_be_bytes() };
            out.extend_from_slice(&[NV_ENCODE_NATIVE, u8::from(le), 0, 0]);
            out.extend_from_slice(&u32b(0)); // nvl_version
            out.extend_from_slice(&u32b(1)); // nvl_nvflag: NV_UNIQUE_NAME
            for (name, value) in pairs(info) {
                let mut p = Vec::new();
                let (ty, nelem): (i32, i32) = match value {
                    V::U64(_) => (DATA_TYPE_UINT64, 1),
                    V::Str(_) => (DATA_TYPE_STRING, 1),
                    V::Flag => (DATA_TYPE_BOOLEAN, 0),
                };
                p.extend_from_slice(&[0; 4]); // size, patched below
                let name_sz = (name.len() + 1) as u16;
                p.extend_from_slice(&if le {
                    name_sz.to_le_bytes()
                } else {
                    name_sz.to_be_bytes()
                });
                p.extend_from_slice(&[0, 0]);
                p.extend_from_slice(&u32b(nelem as u32));
                p.extend_from_slice(&u32b(ty as u32));
                p.extend_from_slice(name.as_bytes());
                p.push(0);
                pad(&mut p, 8);
                match value {
                    V::U64(x) => {
                        p.extend_from_slice(&if le { x.to_le_bytes() } else { x.to_be_bytes() })
                    }
                    V::Str(s) => {
                        p.extend_from_slice(s.as_bytes());
                        p.push(0);
                    }
                    V::Flag => {}
                }
                pad(&mut p, 8);
                let size = u32b(p.len() as u32);
                p[..4].copy_from_slice(&size);
                out.extend_from_slice(&p);
            }
            out.extend_from_slice(&[0; 4]);
        }
        Encoding::Xdr => {
            out.extend_from_slice(&[NV_ENCODE_XDR, 1, 0, 0]);
            out.extend_from_slice(&0u32.to_be_bytes());
            out.extend_from_slice(&1u32.to_be_bytes());
            let xdr_str = |p: &mut Vec<u8>, s: &str| {
                p.extend_from_slice(&(s.len() as u32).to_be_bytes());
                p.extend_from_slice(s.as_bytes());
                pad(p, 4);
            };
            for (name, value) in pairs(info) {
                let mut p = vec![0; 8]; // encoded and decoded sizes, patched below
                xdr_str(&mut p, name);
                let (ty, nelem): (i32, i32) = match value {
                    V::U64(_) => (DATA_TYPE_UINT64, 1),
                    V::Str(_) => (DATA_TYPE_STRING, 1),
                    V::Flag => (DATA_TYPE_BOOLEAN, 0),
                };
                p.extend_from_slice(&ty.to_be_bytes());
                p.extend_from_slice(&nelem.to_be_bytes());
                match value {
                    V::U64(x) => p.extend_from_slice(&x.to_be_bytes()),
                    V::Str(s) => xdr_str(&mut p, s),
                    V::Flag => {}
                }
                let len = (p.len() as u32).to_be_bytes();
                p[..4].copy_from_slice(&len);
                p[4..8].copy_from_slice(&len);
                out.extend_from_slice(&p);
            }
            out.extend_from_slice(&[0; 8]);
        }
    }
    out
}

/// Builds the token string for `info` (its `version` is written as is).
pub fn encode_token(info: &ResumeTokenInfo, encoding: Encoding) -> String {
    wrap_packed(
        info.version,
        &pack(info, encoding),
        encoding == Encoding::NativeBig,
    )
}

/// Builds a well-formed token header and payload around any packed bytes (compressed,
/// checksummed with big- or little-endian words), so that tests and fuzzers reach the
/// nvlist parser with arbitrary lists.
pub fn wrap_packed(version: u32, packed: &[u8], big_endian_checksum: bool) -> String {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
    z.write_all(packed).expect("writing to a Vec cannot fail");
    let compressed = z.finish().expect("writing to a Vec cannot fail");
    let (le, be) = fletcher4_first_word(&compressed);
    let checksum = if big_endian_checksum { be } else { le };
    let hex: String = compressed.iter().map(|b| format!("{b:02x}")).collect();
    format!("{version}-{checksum:x}-{:x}-{hex}", packed.len())
}
