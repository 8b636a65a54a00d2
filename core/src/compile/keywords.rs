//! One keyword automaton over every rule's keywords.

use std::fmt;

use daachorse::CharwiseDoubleArrayAhoCorasick;
use rustc_hash::FxHashMap;

use crate::normalize::{is_letter_or_digit, is_word_char};

/// Who owns a keyword pattern.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeywordOwner {
    pub rule: u32,
    /// Index into the rule's substrings followed by its words.
    pub keyword: u32,
    pub whole_word: bool,
}

/// One automaton over the keywords of every rule: a character-wise double-array Aho-Corasick
/// automaton, which searches short CJK text several times faster than a byte-wise one.
#[derive(Default)]
pub(crate) struct KeywordIndex {
    automaton: Option<CharwiseDoubleArrayAhoCorasick<u32>>,
    /// For each pattern, its range in `owners`.
    ranges: Vec<(u32, u32)>,
    owners: Vec<KeywordOwner>,
}

impl KeywordIndex {
    /// Calls `found(owner, start, end)` for every keyword occurrence in normalized text,
    /// whole-word keywords only where they stand alone.
    pub fn find(&self, text: &str, mut found: impl FnMut(KeywordOwner, usize, usize)) {
        let Some(automaton) = &self.automaton else {
            return;
        };
        for m in automaton.find_overlapping_iter(text) {
            let (start, end) = (m.start(), m.end());
            let (lo, hi) = self.ranges[m.value() as usize];
            let alone = || {
                let before = text[..start].chars().next_back();
                let after = text[end..].chars().next();
                !before.is_some_and(is_word_char) && !after.is_some_and(is_word_char)
            };
            for owner in &self.owners[lo as usize..hi as usize] {
                if !owner.whole_word || alone() {
                    found(*owner, start, end);
                }
            }
        }
    }

    /// Heap bytes of the automaton and owner tables.
    pub fn heap_bytes(&self) -> usize {
        self.automaton
            .as_ref()
            .map_or(0, CharwiseDoubleArrayAhoCorasick::heap_bytes)
            + self.ranges.len() * 8
            + self.owners.len() * size_of::<KeywordOwner>()
    }
}

impl fmt::Debug for KeywordIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeywordIndex")
            .field("patterns", &self.ranges.len())
            .field("owners", &self.owners.len())
            .finish()
    }
}

#[derive(Default)]
pub(super) struct KeywordPatterns {
    by_text: FxHashMap<String, u32>,
    texts: Vec<String>,
    owned: Vec<(u32, KeywordOwner)>,
}

impl KeywordPatterns {
    /// Adds a normalized keyword; one with separators inside (`free gift`,
    /// `lucky888.example`) also without them, which is what it collapses to when spelled
    /// out letter by letter (`f r e e g i f t`).
    pub(super) fn add_keyword(&mut self, normalized: String, owner: KeywordOwner) {
        let joined: String = normalized
            .chars()
            .filter(|c| is_letter_or_digit(*c))
            .collect();
        if !joined.is_empty() && joined != normalized {
            self.add(joined, owner);
        }
        self.add(normalized, owner);
    }

    fn add(&mut self, normalized: String, owner: KeywordOwner) {
        let next = self.texts.len() as u32;
        let id = *self.by_text.entry(normalized).or_insert_with_key(|text| {
            self.texts.push(text.clone());
            next
        });
        self.owned.push((id, owner));
    }

    pub(super) fn build(mut self) -> Result<KeywordIndex, String> {
        if self.texts.is_empty() {
            return Ok(KeywordIndex::default());
        }
        let patterns = self.texts.iter().zip(0u32..);
        let automaton = CharwiseDoubleArrayAhoCorasick::with_values(patterns)
            .map_err(|e| format!("the keyword automaton cannot be built: {e}"))?;
        self.owned.sort_by_key(|(pattern, _)| *pattern);
        let mut ranges = vec![(0u32, 0u32); self.texts.len()];
        let mut owners = Vec::with_capacity(self.owned.len());
        for (pattern, owner) in self.owned {
            let range = &mut ranges[pattern as usize];
            if range.0 == range.1 {
                range.0 = owners.len() as u32;
            }
            owners.push(owner);
            range.1 = owners.len() as u32;
        }
        Ok(KeywordIndex {
            automaton: Some(automaton),
            ranges,
            owners,
        })
    }
}
