//! File framing: magic + version, then checksummed records.
//!
//! ```text
//! file   := magic[4] version:u32le record*
//! record := tag:u8 len:u32le crc:u32le payload[len]
//! crc    := crc32c(tag || len || payload)
//! ```

use super::FORMAT_VERSION;
use crate::error::{Error, Result};
use std::path::Path;

/// Bytes before the first record.
pub const FILE_PREFIX_LEN: usize = 8;
/// Bytes of a record header.
pub const RECORD_HEADER_LEN: usize = 9;

/// Magic of the database header file `sop.db`.
pub const MAGIC_DB: [u8; 4] = *b"SOPD";
/// Magic of a commit file.
pub const MAGIC_COMMIT: [u8; 4] = *b"SOPC";
/// Magic of a checkpoint file.
pub const MAGIC_CHECKPOINT: [u8; 4] = *b"SOPK";
/// Magic of a pending batch file.
pub const MAGIC_PENDING: [u8; 4] = *b"SOPP";

/// Record tags.
pub mod tag {
    /// Per-file header (postcard struct).
    pub const HEADER: u8 = 1;
    /// A B-tree node image: `node_id:u64le` then the node encoding.
    pub const NODE: u8 = 2;
    /// A value stored outside its node: raw bytes.
    pub const BLOB: u8 = 3;
    /// Commit metadata (postcard struct); always the last record of a commit file.
    pub const META: u8 = 4;
    /// Checkpoint body (postcard struct).
    pub const CHECKPOINT: u8 = 5;
    /// Last record of a commit file: `meta_offset:u64le`, so readers find the metadata
    /// without reading node images.
    pub const TRAILER: u8 = 6;
    /// A leaf stored as changes to an earlier full image: `node_id:u64le`, the base `Loc`
    /// (`seq:u64le off:u32le len:u32le`), then the delta encoding.
    pub const DELTA: u8 = 7;
    /// The commit identities a checkpoint covers (postcard `ChainWindow`); the second
    /// record of a checkpoint.
    pub const CHAIN: u8 = 8;
    /// The body of a pending batch file (postcard `PendingBatch`); its only record.
    pub const PENDING: u8 = 9;
    /// The verdicts on contributed batches that the commits of a checkpoint's chain window
    /// recorded (postcard `Vec<Decided>`, oldest first); the third record of a checkpoint.
    pub const VERDICTS: u8 = 10;
}

/// Length of a commit file's trailer record.
pub const TRAILER_LEN: usize = RECORD_HEADER_LEN + 8;

/// Starts a file with its magic and the current format version.
pub fn begin_file(out: &mut Vec<u8>, magic: [u8; 4]) {
    out.extend_from_slice(&magic);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
}

/// Appends a record; returns the offset of the record header within `out`.
pub fn put_record(out: &mut Vec<u8>, tag: u8, payload: &[u8]) -> usize {
    let start = out.len();
    let len = u32::try_from(payload.len()).expect("records are bounded well below 4 GiB");
    let mut h = crc32c::crc32c(&[tag]);
    h = crc32c::crc32c_append(h, &len.to_le_bytes());
    h = crc32c::crc32c_append(h, payload);
    out.push(tag);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&h.to_le_bytes());
    out.extend_from_slice(payload);
    start
}

/// Checks a file's magic and version.
pub fn check_prefix(file: &Path, buf: &[u8], magic: [u8; 4]) -> Result<()> {
    if buf.len() < FILE_PREFIX_LEN {
        return Err(Error::corrupt(file, format!("file is {} bytes, shorter than its header", buf.len())));
    }
    if buf[..4] != magic {
        let show = |b: &[u8]| b.iter().map(|c| format!("{c:02x}")).collect::<String>();
        return Err(Error::corrupt(
            file,
            format!(
                "bad magic 0x{}, expected 0x{} ({})",
                show(&buf[..4]),
                show(&magic),
                String::from_utf8_lossy(&magic)
            ),
        ));
    }
    let version = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes"));
    if version != FORMAT_VERSION {
        return Err(Error::UnsupportedFormat { file: file.into(), found: version, supported: FORMAT_VERSION });
    }
    Ok(())
}

/// Parses the record starting at `buf[0]`; returns `(tag, payload, total record length)`.
pub fn parse_record<'a>(file: &Path, offset: u64, buf: &'a [u8]) -> Result<(u8, &'a [u8], usize)> {
    if buf.len() < RECORD_HEADER_LEN {
        return Err(Error::corrupt(file, format!("truncated record header at offset {offset}")));
    }
    let tag = buf[0];
    let len = u32::from_le_bytes(buf[1..5].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(buf[5..9].try_into().expect("4 bytes"));
    let end = RECORD_HEADER_LEN.checked_add(len).filter(|&e| e <= buf.len()).ok_or_else(|| {
        Error::corrupt(file, format!("record at offset {offset} claims {len} bytes past the end of the file"))
    })?;
    let payload = &buf[RECORD_HEADER_LEN..end];
    let mut h = crc32c::crc32c(&buf[..5]);
    h = crc32c::crc32c_append(h, payload);
    if h != crc {
        return Err(Error::corrupt(file, format!("checksum mismatch in record at offset {offset}")));
    }
    Ok((tag, payload, end))
}

/// Iterates the records of a whole file (after its prefix).
pub fn records<'a>(file: &'a Path, buf: &'a [u8]) -> impl Iterator<Item = Result<(u64, u8, &'a [u8])>> + 'a {
    let mut pos = FILE_PREFIX_LEN;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || pos >= buf.len() {
            return None;
        }
        match parse_record(file, pos as u64, &buf[pos..]) {
            Ok((tag, payload, len)) => {
                let at = pos as u64;
                pos += len;
                Some(Ok((at, tag, payload)))
            }
            Err(e) => {
                failed = true;
                Some(Err(e))
            }
        }
    })
}
