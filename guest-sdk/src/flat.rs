//! Flat buffers: many byte strings in one `data` buffer plus their end offsets.

/// Items of a flat buffer, in order. Offsets the host sent are trusted no further than
/// this: an end beyond the data or before the previous end yields an empty item.
#[cfg(any(feature = "key-order", feature = "compute"))]
pub(crate) fn items<'a>(data: &'a [u8], ends: &'a [u32]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut start = 0usize;
    ends.iter().map(move |&e| {
        let e = e as usize;
        let item = if e >= start && e <= data.len() { &data[start..e] } else { &[][..] };
        start = e.max(start).min(data.len());
        item
    })
}

/// Builds a flat buffer item by item.
#[derive(Default)]
pub struct FlatBuilder {
    /// The items, back to back.
    pub data: Vec<u8>,
    /// End offset of each item.
    pub ends: Vec<u32>,
}

impl FlatBuilder {
    /// An empty builder with room for `n` items.
    pub fn with_capacity(n: usize, bytes: usize) -> Self {
        FlatBuilder { data: Vec::with_capacity(bytes), ends: Vec::with_capacity(n) }
    }

    /// Appends one item.
    pub fn push(&mut self, item: &[u8]) {
        self.data.extend_from_slice(item);
        self.close();
    }

    /// Ends the item written so far straight into `data`.
    pub fn close(&mut self) {
        self.ends.push(self.data.len() as u32);
    }
}
