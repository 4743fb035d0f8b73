//! Packed nvlists, as [`super::decode_token`] reads them.
//!
//! Packed nvlists (`nvpair.c`): a 4-byte header (encoding, endianness, 2 reserved), then the
//! list in the native or XDR encoding.

use super::ResumeTokenError;

pub(super) const NV_ENCODE_NATIVE: u8 = 0;
pub(super) const NV_ENCODE_XDR: u8 = 1;

pub(super) const DATA_TYPE_BOOLEAN: i32 = 1;
pub(super) const DATA_TYPE_BYTE: i32 = 2;
pub(super) const DATA_TYPE_INT16: i32 = 3;
pub(super) const DATA_TYPE_UINT16: i32 = 4;
pub(super) const DATA_TYPE_INT32: i32 = 5;
pub(super) const DATA_TYPE_UINT32: i32 = 6;
pub(super) const DATA_TYPE_INT64: i32 = 7;
pub(super) const DATA_TYPE_UINT64: i32 = 8;
pub(super) const DATA_TYPE_STRING: i32 = 9;
pub(super) const DATA_TYPE_HRTIME: i32 = 18;
pub(super) const DATA_TYPE_NVLIST: i32 = 19;
pub(super) const DATA_TYPE_NVLIST_ARRAY: i32 = 20;
pub(super) const DATA_TYPE_BOOLEAN_VALUE: i32 = 21;
pub(super) const DATA_TYPE_INT8: i32 = 22;
pub(super) const DATA_TYPE_UINT8: i32 = 23;

/// The values a token uses; anything else is kept as `Other` and ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum NvValue {
    /// `DATA_TYPE_BOOLEAN`: present, no value.
    Flag,
    Bool(bool),
    U64(u64),
    Str(String),
    Other,
}

#[derive(Debug)]
pub(super) struct NvPair {
    /// Where the pair starts in the packed list, for error messages.
    pub(super) offset: usize,
    pub(super) name: String,
    pub(super) value: NvValue,
}

pub(super) fn nv_err(offset: usize, reason: String) -> ResumeTokenError {
    ResumeTokenError::Nvlist { offset, reason }
}

pub(super) fn nested(offset: usize, name: &str) -> ResumeTokenError {
    nv_err(
        offset,
        format!("{name:?} is a nested nvlist, which tokens never hold"),
    )
}

/// Bounds-checked reads over the packed list.
pub(super) struct Reader<'a> {
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

pub(super) fn align(n: usize, to: usize) -> Option<usize> {
    n.checked_add(to - 1).map(|v| v / to * to)
}

pub(super) fn unpack_nvlist(buf: &[u8]) -> Result<Vec<NvPair>, ResumeTokenError> {
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
pub(super) fn unpack_native(r: &Reader<'_>) -> Result<Vec<NvPair>, ResumeTokenError> {
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
pub(super) fn unpack_xdr(r: &Reader<'_>) -> Result<Vec<NvPair>, ResumeTokenError> {
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
