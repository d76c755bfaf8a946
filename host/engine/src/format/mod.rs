//! On-disk encodings. `docs/FORMAT.md` describes every byte; keep the two in step.
//!
//! Every file starts with a 4-byte magic and a little-endian `u32` format version, followed by
//! checksummed records (see [`record`]). Node images use a hand-written encoding
//! ([`node`]) because they are on the read path; commit metadata and checkpoints are
//! postcard-encoded structs ([`meta`]).

pub mod codec;
pub mod meta;
pub mod node;
pub mod record;

/// The format version this build writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 4;
