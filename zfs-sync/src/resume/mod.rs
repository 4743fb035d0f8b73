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
//!
//! Layout: the token and its envelope here; the packed nvlist inside in `nvlist.rs`; the
//! encoder for tests and fuzz seeds in `encode.rs`.

#[cfg(any(test, feature = "testing"))]
pub mod encode;
mod nvlist;
#[cfg(test)]
mod tests;

use std::fmt;
use std::io::Read;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use nvlist::{NvValue, nv_err, unpack_nvlist};

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
