//! Decoding ZFS `receive_resume_token`s.
//!
//! After an interrupted `zfs receive -s`, the target dataset's `receive_resume_token` property
//! tells the sender where to restart (`zfs send -t TOKEN`). OpenZFS builds it in
//! `get_receive_resume_token` (`dsl_dataset.c`) and reads it back in
//! `zfs_send_resume_token_to_nvlist` (`libzfs_sendrecv.c`):
//!
//! ```text
//! <version>-<checksum hex>-<packed size hex>-<hex of the zlib-compressed packed nvlist>
//! ```
//!
//! - `version` is 1, or 2 for tokens of redacted sends;
//! - `checksum` is the first word of the fletcher-4 checksum of the compressed bytes (the plain
//!   sum of their 32-bit words in the host's byte order; both orders are accepted here);
//! - `packed size` is the length of the packed nvlist before compression;
//! - the nvlist is packed with `fnvlist_pack`, i.e. the host's native encoding; the XDR
//!   encoding is accepted too. Its pairs: `fromguid` (incremental only), `object`, `offset`,
//!   `bytes`, `toguid`, `toname`, and the boolean flags `largeblockok`, `embedok`,
//!   `compressok`, `rawok`.
//!
//! The decoder takes arbitrary input without panicking: every read is bounds-checked and the
//! decompressed size is capped at [`MAX_PACKED_SIZE`].

use std::fmt;
use std::io::Read;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// The largest packed nvlist accepted (a real token's is a few hundred bytes).
pub const MAX_PACKED_SIZE: u64 = 1 << 20;
/// The longest token accepted, in characters.
pub const MAX_TOKEN_LEN: usize = 2 * (1 << 20) + 64;

/// The send flags recorded in a token: the resumed send must use the same ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ResumeFlags {
    /// `-e`
    pub embedok: bool,
    /// `-c`
    pub compressok: bool,
    /// `-w`
    pub rawok: bool,
    /// `-L`
    pub largeblockok: bool,
}

/// What a resume token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeTokenInfo {
    /// Token format version (1, or 2 for redacted sends).
    pub version: u32,
    /// The incremental source's GUID; `None` for a full stream.
    pub fromguid: Option<u64>,
    /// The GUID of the snapshot being received: check it against the plan before resuming.
    pub toguid: Option<u64>,
    /// The full name of the snapshot being sent, on the sender.
    pub toname: Option<String>,
    /// Where the stream stopped: object number (0 when absent).
    pub object: u64,
    /// Where the stream stopped: offset in the object (0 when absent).
    pub offset: u64,
    /// Bytes received so far (0 when absent).
    pub bytes: u64,
    pub flags: ResumeFlags,
}

/// Why a token could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResumeTokenError {
    /// Not `<version>-<checksum>-<size>-<payload>` of the allowed characters.
    #[error("is not a resume token ({0})")]
    Format(String),
    /// A version other than 1 or 2.
    #[error("has unsupported version {0} (expected 1 or 2)")]
    Version(u64),
    /// The declared packed size exceeds [`MAX_PACKED_SIZE`] or is zero.
    #[error("declares a packed size of {0} bytes (must be 1 to {MAX_PACKED_SIZE})")]
    Size(u64),
    /// The checksum in the token does not match its payload.
    #[error("is corrupt (checksum {expected:#x} does not match the payload's {actual:#x})")]
    Checksum { expected: u64, actual: u64 },
    /// The payload is not a zlib stream, or does not inflate to the declared size.
    #[error("is corrupt (payload {0})")]
    Payload(String),
    /// The packed nvlist is malformed.
    #[error("is corrupt (nvlist at byte {offset}: {reason})")]
    Nvlist { offset: usize, reason: String },
}

impl ResumeTokenError {
    /// Into the core error, naming `field`.
    pub fn into_error(self, field: impl Into<String>) -> Error {
        Error::invalid(field, format!("resume token {self}"))
    }
}

impl From<ResumeTokenError> for Error {
    fn from(e: ResumeTokenError) -> Self {
        e.into_error("resume_token")
    }
}

/// Checks that a token holds only `[0-9a-f-]`, so it can be put in a command as is. It does not
/// decode the token.
pub fn validate_token_chars(token: &str) -> crate::Result<()> {
    if token.is_empty() {
        return Err(Error::invalid("resume_token", "must not be empty"));
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(Error::invalid(
            "resume_token",
            format!(
                "is {} characters long; at most {MAX_TOKEN_LEN} are accepted",
                token.len()
            ),
        ));
    }
    if let Some((i, ch)) = token
        .char_indices()
        .find(|(_, c)| !matches!(c, '0'..='9' | 'a'..='f' | '-'))
    {
        return Err(Error::invalid(
            "resume_token",
            format!("contains {ch:?} at byte {i}; only 0-9 a-f and '-' are allowed"),
        ));
    }
    Ok(())
}

/// Decodes a `receive_resume_token`.
pub fn decode_token(token: &str) -> Result<ResumeTokenInfo, ResumeTokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(ResumeTokenError::Format(format!(
            "{} characters is too long",
            token.len()
        )));
    }
    let mut parts = token.splitn(4, '-');
    let (Some(version), Some(checksum), Some(size), Some(payload)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ResumeTokenError::Format(
            "expected four '-'-separated parts".into(),
        ));
    };
    let version = parse_header_number(version, 10, "version")?;
    if version != 1 && version != 2 {
        return Err(ResumeTokenError::Version(version));
    }
    let checksum = parse_header_number(checksum, 16, "checksum")?;
    let size = parse_header_number(size, 16, "packed size")?;
    if size == 0 || size > MAX_PACKED_SIZE {
        return Err(ResumeTokenError::Size(size));
    }
    let compressed = decode_hex(payload)?;
    let (le, be) = fletcher4_first_word(&compressed);
    if checksum != le && checksum != be {
        return Err(ResumeTokenError::Checksum {
            expected: checksum,
            actual: le,
        });
    }
    let packed = inflate(&compressed, size)?;
    let pairs = unpack_nvlist(&packed)?;
    let mut info = ResumeTokenInfo {
        version: version as u32,
        fromguid: None,
        toguid: None,
        toname: None,
        object: 0,
        offset: 0,
        bytes: 0,
        flags: ResumeFlags::default(),
    };
    let mut seen: Vec<&str> = Vec::new();
    for pair in &pairs {
        let known = matches!(
            pair.name.as_str(),
            "fromguid"
                | "toguid"
                | "toname"
                | "object"
                | "offset"
                | "bytes"
                | "embedok"
                | "compressok"
                | "rawok"
                | "largeblockok"
        );
        if !known {
            continue;
        }
        if seen.contains(&pair.name.as_str()) {
            return Err(nv_err(
                pair.offset,
                format!("duplicate pair {:?}", pair.name),
            ));
        }
        seen.push(&pair.name);
        let want_u64 = |v: &NvValue| match v {
            NvValue::U64(x) => Ok(*x),
            _ => Err(nv_err(
                pair.offset,
                format!("{:?} is not a uint64", pair.name),
            )),
        };
        match pair.name.as_str() {
            "fromguid" => info.fromguid = Some(want_u64(&pair.value)?),
            "toguid" => info.toguid = Some(want_u64(&pair.value)?),
            "object" => info.object = want_u64(&pair.value)?,
            "offset" => info.offset = want_u64(&pair.value)?,
            "bytes" => info.bytes = want_u64(&pair.value)?,
            "toname" => match &pair.value {
                NvValue::Str(s) => info.toname = Some(s.clone()),
                _ => return Err(nv_err(pair.offset, "\"toname\" is not a string".into())),
            },
            flag => {
                let on = match pair.value {
                    NvValue::Flag => true,
                    NvValue::Bool(b) => b,
                    _ => return Err(nv_err(pair.offset, format!("{flag:?} is not a boolean"))),
                };
                match flag {
                    "embedok" => info.flags.embedok = on,
                    "compressok" => info.flags.compressok = on,
                    "rawok" => info.flags.rawok = on,
                    _ => info.flags.largeblockok = on,
                }
            }
        }
    }
    Ok(info)
}

fn parse_header_number(s: &str, radix: u32, what: &str) -> Result<u64, ResumeTokenError> {
    let digits_ok = !s.is_empty()
        && s.len() <= 16
        && s.bytes().all(|b| {
            if radix == 10 {
                b.is_ascii_digit()
            } else {
                matches!(b, b'0'..=b'9' | b'a'..=b'f')
            }
        });
    if !digits_ok {
        return Err(ResumeTokenError::Format(format!("{what} is not a number")));
    }
    u64::from_str_radix(s, radix)
        .map_err(|_| ResumeTokenError::Format(format!("{what} is out of range")))
}

fn decode_hex(s: &str) -> Result<Vec<u8>, ResumeTokenError> {
    if s.is_empty() || !s.len().is_multiple_of(2) {
        return Err(ResumeTokenError::Format(
            "payload is not an even number of hex digits".into(),
        ));
    }
    let digit = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    };
    s.as_bytes()
        .chunks_exact(2)
        .map(|p| match (digit(p[0]), digit(p[1])) {
            (Some(h), Some(l)) => Ok((h << 4) | l),
            _ => Err(ResumeTokenError::Format(
                "payload is not lower-case hex".into(),
            )),
        })
        .collect()
}

/// The first word of fletcher-4 over `data` (trailing bytes past the last whole 32-bit word are
/// ignored, as in `fletcher_4_native_varsize`), reading words little- and big-endian.
fn fletcher4_first_word(data: &[u8]) -> (u64, u64) {
    let mut le = 0u64;
    let mut be = 0u64;
    for w in data.chunks_exact(4) {
        let w = [w[0], w[1], w[2], w[3]];
        le = le.wrapping_add(u64::from(u32::from_le_bytes(w)));
        be = be.wrapping_add(u64::from(u32::from_be_bytes(w)));
    }
    (le, be)
}

fn inflate(compressed: &[u8], size: u64) -> Result<Vec<u8>, ResumeTokenError> {
    let mut out = Vec::new();
    // One byte more than declared, to notice a payload that inflates to more.
    flate2::read::ZlibDecoder::new(compressed)
        .take(size + 1)
        .read_to_end(&mut out)
        .map_err(|e| ResumeTokenError::Payload(format!("does not inflate: {e}")))?;
    if out.len() as u64 != size {
        return Err(ResumeTokenError::Payload(format!(
            "inflates to {}{} bytes, not the declared {size}",
            out.len().min(size as usize),
            if out.len() as u64 > size { "+" } else { "" }
        )));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Packed nvlists (`nvpair.c`): a 4-byte header (encoding, endianness, 2 reserved), then the
// list in the native or XDR encoding.

const NV_ENCODE_NATIVE: u8 = 0;
const NV_ENCODE_XDR: u8 = 1;

const DATA_TYPE_BOOLEAN: i32 = 1;
const DATA_TYPE_BYTE: i32 = 2;
const DATA_TYPE_INT16: i32 = 3;
const DATA_TYPE_UINT16: i32 = 4;
const DATA_TYPE_INT32: i32 = 5;
const DATA_TYPE_UINT32: i32 = 6;
const DATA_TYPE_INT64: i32 = 7;
const DATA_TYPE_UINT64: i32 = 8;
const DATA_TYPE_STRING: i32 = 9;
const DATA_TYPE_HRTIME: i32 = 18;
const DATA_TYPE_NVLIST: i32 = 19;
const DATA_TYPE_NVLIST_ARRAY: i32 = 20;
const DATA_TYPE_BOOLEAN_VALUE: i32 = 21;
const DATA_TYPE_INT8: i32 = 22;
const DATA_TYPE_UINT8: i32 = 23;

/// The values a token uses; anything else is kept as `Other` and ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
enum NvValue {
    /// `DATA_TYPE_BOOLEAN`: present, no value.
    Flag,
    Bool(bool),
    U64(u64),
    Str(String),
    Other,
}

#[derive(Debug)]
struct NvPair {
    /// Where the pair starts in the packed list, for error messages.
    offset: usize,
    name: String,
    value: NvValue,
}

fn nv_err(offset: usize, reason: String) -> ResumeTokenError {
    ResumeTokenError::Nvlist { offset, reason }
}

fn nested(offset: usize, name: &str) -> ResumeTokenError {
    nv_err(
        offset,
        format!("{name:?} is a nested nvlist, which tokens never hold"),
    )
}

/// Bounds-checked reads over the packed list.
struct Reader<'a> {
    buf: &'a [u8],
    little: bool,
}

impl Reader<'_> {
    fn bytes(&self, at: usize, len: usize) -> Result<&[u8], ResumeTokenError> {
        at.checked_add(len)
            .and_then(|end| self.buf.get(at..end))
            .ok_or_else(|| {
                nv_err(
                    at,
                    format!("needs {len} bytes, the list ends at {}", self.buf.len()),
                )
            })
    }

    fn u32(&self, at: usize) -> Result<u32, ResumeTokenError> {
        let b = self.bytes(at, 4)?;
        let b = [b[0], b[1], b[2], b[3]];
        Ok(if self.little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    }

    fn i32(&self, at: usize) -> Result<i32, ResumeTokenError> {
        self.u32(at).map(|v| v as i32)
    }

    fn u16(&self, at: usize) -> Result<u16, ResumeTokenError> {
        let b = self.bytes(at, 2)?;
        Ok(if self.little {
            u16::from_le_bytes([b[0], b[1]])
        } else {
            u16::from_be_bytes([b[0], b[1]])
        })
    }

    fn u64(&self, at: usize) -> Result<u64, ResumeTokenError> {
        let b = self.bytes(at, 8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(if self.little {
            u64::from_le_bytes(a)
        } else {
            u64::from_be_bytes(a)
        })
    }

    fn string(&self, at: usize, len: usize) -> Result<String, ResumeTokenError> {
        let b = self.bytes(at, len)?;
        String::from_utf8(b.to_vec()).map_err(|_| nv_err(at, "a string is not UTF-8".into()))
    }
}

fn align(n: usize, to: usize) -> Option<usize> {
    n.checked_add(to - 1).map(|v| v / to * to)
}

fn unpack_nvlist(buf: &[u8]) -> Result<Vec<NvPair>, ResumeTokenError> {
    let header = buf
        .get(..4)
        .ok_or_else(|| nv_err(0, "shorter than its 4-byte header".into()))?;
    match header[0] {
        NV_ENCODE_NATIVE => {
            let little = match header[1] {
                1 => true,
                0 => false,
                e => return Err(nv_err(1, format!("unknown byte order {e}"))),
            };
            unpack_native(&Reader { buf, little })
        }
        NV_ENCODE_XDR => unpack_xdr(&Reader { buf, little: false }),
        e => Err(nv_err(0, format!("unknown encoding {e}"))),
    }
}

/// The native encoding: the in-memory `nvpair_t`s copied out, 8-byte aligned.
fn unpack_native(r: &Reader<'_>) -> Result<Vec<NvPair>, ResumeTokenError> {
    // Header (4) + nvl_version (4) + nvl_nvflag (4).
    let mut at = 12;
    r.bytes(0, at)?;
    let mut pairs = Vec::new();
    loop {
        let size = r.i32(at)?;
        if size == 0 {
            return Ok(pairs);
        }
        let size =
            usize::try_from(size).map_err(|_| nv_err(at, format!("negative pair size {size}")))?;
        if size < 16 || !size.is_multiple_of(8) {
            return Err(nv_err(
                at,
                format!("pair size {size} is not a multiple of 8 of at least 16"),
            ));
        }
        let pair = r.bytes(at, size)?;
        let p = Reader {
            buf: pair,
            little: r.little,
        };
        let name_sz = usize::from(p.u16(4)?);
        let nelem = p.i32(8)?;
        let ty = p.i32(12)?;
        if name_sz == 0 {
            return Err(nv_err(at, "empty name".into()));
        }
        let name_bytes = p
            .bytes(16, name_sz)
            .map_err(|_| nv_err(at, "name runs past its pair".into()))?;
        if name_bytes[name_sz - 1] != 0 {
            return Err(nv_err(at, "name is not NUL-terminated".into()));
        }
        let name = p
            .string(16, name_sz - 1)
            .map_err(|_| nv_err(at, "name is not UTF-8".into()))?;
        let value_at = align(16 + name_sz, 8).ok_or_else(|| nv_err(at, "name too long".into()))?;
        let fixed = |len: usize| -> Result<usize, ResumeTokenError> {
            if nelem != 1 {
                return Err(nv_err(
                    at,
                    format!("{name:?} has {nelem} elements, expected 1"),
                ));
            }
            p.bytes(value_at, len)
                .map(|_| value_at)
                .map_err(|_| nv_err(at, format!("{name:?} runs past its pair")))
        };
        let value = match ty {
            DATA_TYPE_BOOLEAN => {
                if nelem != 0 {
                    return Err(nv_err(
                        at,
                        format!("{name:?} is a boolean flag with {nelem} elements"),
                    ));
                }
                NvValue::Flag
            }
            DATA_TYPE_UINT64 | DATA_TYPE_INT64 | DATA_TYPE_HRTIME => {
                let v = p.u64(fixed(8)?)?;
                if ty == DATA_TYPE_UINT64 {
                    NvValue::U64(v)
                } else {
                    NvValue::Other
                }
            }
            DATA_TYPE_BOOLEAN_VALUE => NvValue::Bool(p.i32(fixed(4)?)? != 0),
            DATA_TYPE_STRING => {
                let v_at = fixed(1)?;
                let rest = &pair[v_at..];
                let nul = rest
                    .iter()
                    .position(|b| *b == 0)
                    .ok_or_else(|| nv_err(at, format!("{name:?} string is not NUL-terminated")))?;
                NvValue::Str(p.string(v_at, nul)?)
            }
            DATA_TYPE_NVLIST | DATA_TYPE_NVLIST_ARRAY => {
                // Native embedded lists are laid out after their parent pair; tokens have none.
                return Err(nested(at, &name));
            }
            _ => NvValue::Other,
        };
        pairs.push(NvPair {
            offset: at,
            name,
            value,
        });
        at += size;
    }
}

/// The XDR encoding: big-endian 4-byte units; strings as length, bytes, padding.
fn unpack_xdr(r: &Reader<'_>) -> Result<Vec<NvPair>, ResumeTokenError> {
    // Header (4) + version (4) + nvflag (4).
    let mut at = 12;
    r.bytes(0, at)?;
    let mut pairs = Vec::new();
    loop {
        let encoded = r.i32(at)?;
        let decoded = r.i32(at + 4)?;
        if encoded == 0 && decoded == 0 {
            return Ok(pairs);
        }
        let encoded = usize::try_from(encoded)
            .map_err(|_| nv_err(at, format!("negative pair size {encoded}")))?;
        if encoded < 20 || !encoded.is_multiple_of(4) {
            return Err(nv_err(
                at,
                format!("pair size {encoded} is not a multiple of 4 of at least 20"),
            ));
        }
        let pair = r.bytes(at, encoded)?;
        let p = Reader {
            buf: pair,
            little: false,
        };
        let name_len = p.u32(8)? as usize;
        let name = p
            .string(12, name_len)
            .map_err(|_| nv_err(at, "name runs past its pair or is not UTF-8".into()))?;
        if name.is_empty() {
            return Err(nv_err(at, "empty name".into()));
        }
        let mut v = align(12 + name_len, 4).ok_or_else(|| nv_err(at, "name too long".into()))?;
        let ty = p.i32(v)?;
        let nelem = p.i32(v + 4)?;
        v += 8;
        let one = |n: i32| {
            if n == 1 {
                Ok(())
            } else {
                Err(nv_err(at, format!("{name:?} has {n} elements, expected 1")))
            }
        };
        let value = match ty {
            DATA_TYPE_BOOLEAN => NvValue::Flag,
            DATA_TYPE_UINT64 | DATA_TYPE_INT64 | DATA_TYPE_HRTIME => {
                one(nelem)?;
                let x = p.u64(v)?;
                if ty == DATA_TYPE_UINT64 {
                    NvValue::U64(x)
                } else {
                    NvValue::Other
                }
            }
            DATA_TYPE_BOOLEAN_VALUE => {
                one(nelem)?;
                NvValue::Bool(p.i32(v)? != 0)
            }
            DATA_TYPE_STRING => {
                one(nelem)?;
                let len = p.u32(v)? as usize;
                NvValue::Str(p.string(v + 4, len)?)
            }
            DATA_TYPE_BYTE | DATA_TYPE_INT8 | DATA_TYPE_UINT8 | DATA_TYPE_INT16
            | DATA_TYPE_UINT16 | DATA_TYPE_INT32 | DATA_TYPE_UINT32 => NvValue::Other,
            DATA_TYPE_NVLIST | DATA_TYPE_NVLIST_ARRAY => return Err(nested(at, &name)),
            _ => NvValue::Other,
        };
        pairs.push(NvPair {
            offset: at,
            name,
            value,
        });
        at += encoded;
    }
}

impl fmt::Display for ResumeTokenInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.toname.as_deref().unwrap_or("?");
        match self.fromguid {
            Some(from) => write!(f, "incremental from guid {from:#x} to {name}")?,
            None => write!(f, "full send of {name}")?,
        }
        if let Some(to) = self.toguid {
            write!(f, " (guid {to:#x})")?;
        }
        write!(
            f,
            ", {} bytes received, at object {} offset {}",
            self.bytes, self.object, self.offset
        )
    }
}

/// Encodes a token as OpenZFS does (used by tests and the fuzz seed corpus).
#[cfg(any(test, feature = "testing"))]
pub mod encode {
    use std::io::Write;

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
}

#[cfg(test)]
mod tests {
    use super::encode::{Encoding, encode_token};
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
}
