//! Keys and their values side by side in one cache line: a table of such lines finds a key's
//! slot, and what it holds, in one read from memory (the duplicate texts, the flood windows
//! of one message).

/// `N` keys and their values in one 64-byte line. A key of 0 marks a slot never used.
#[repr(C, align(64))]
#[derive(Debug, Clone, Copy)]
pub(super) struct KeyedLine<V, const N: usize> {
    pub(super) keys: [u64; N],
    pub(super) values: [V; N],
}

impl<V: Copy, const N: usize> KeyedLine<V, N> {
    /// A line of unused slots, each holding `value`.
    pub(super) fn unused(value: V) -> Self {
        KeyedLine {
            keys: [0; N],
            values: [value; N],
        }
    }

    /// The slot holding `key`.
    pub(super) fn slot_of(&self, key: u64) -> Option<usize> {
        self.keys.iter().position(|&k| k == key)
    }
}
