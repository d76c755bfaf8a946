//! The B+tree over logical node ids: reading ([`cursor`]) and copy-on-write batch
//! application of item-level mutations ([`apply`]).
//!
//! Nodes never point at physical locations; they name children by logical id, and the
//! registry of the committed state maps ids to images. A commit therefore rewrites only
//! the nodes whose content changed, never their ancestors.

pub mod apply;
pub mod cursor;

use crate::error::Result;
use crate::format::node::Node;
use std::sync::Arc;

/// Loads node images by logical id from one snapshot.
pub trait NodeSource {
    /// The current image of node `id`.
    fn node(&self, id: u64) -> Result<Arc<Node>>;
}
