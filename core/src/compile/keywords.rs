//! One keyword automaton over every rule's keywords.
//!
//! Building the automaton is most of compiling a large rule set (100,000 keywords: about
//! 200 ms), so a recompile reuses the automaton it had: a rule change that leaves keywords as
//! they were builds none, and one that adds a few builds a small automaton over just the new
//! ones, searched after the big one. Patterns no rule owns any more are left in the big
//! automaton without owners. When the new ones grow past a twentieth of the big automaton, or
//! the ownerless past a quarter, everything is built afresh.

use std::fmt;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::automaton::CharAutomaton;
use super::gate::{LetterGate, RUN_REACH};
use crate::normalize::{Normalized, in_skeleton, is_letter_or_digit, is_word_char, letters_only};

/// Who owns a keyword pattern.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeywordOwner {
    pub rule: u32,
    /// Index into the rule's substrings followed by its words.
    pub keyword: u32,
    pub whole_word: bool,
}

/// Keyword automata over the keywords of every rule: character-wise double-array
/// Aho-Corasick automata, which search short CJK text several times faster than byte-wise
/// ones. Pattern ids number the big automaton's patterns first, then the new ones'.
#[derive(Default)]
pub(crate) struct KeywordIndex {
    base: Option<Arc<Automaton>>,
    added: Option<Automaton>,
    /// For each pattern id, its range in `owners`.
    ranges: Vec<(u32, u32)>,
    owners: Vec<KeywordOwner>,
    /// The gate over every pattern of letters and digits alone, when every pattern's letters
    /// and digits alone are a pattern too (see [`KeywordIndex::fold_and_filter`]).
    gate: Option<LetterGate>,
}

/// An automaton and the id of each pattern it finds.
struct Automaton {
    search: CharAutomaton,
    ids: FxHashMap<String, u32>,
}

impl Automaton {
    /// Over `texts`, numbered from `first_id`.
    fn build(texts: Vec<String>, first_id: u32) -> Result<Automaton, String> {
        let search = CharAutomaton::build(texts.iter().map(String::as_str).zip(first_id..))
            .map_err(|e| format!("the keyword automaton cannot be built: {e}"))?;
        Ok(Automaton {
            search,
            ids: texts.into_iter().zip(first_id..).collect(),
        })
    }
}

impl KeywordIndex {
    /// Calls `found(owner, start, end)` for every keyword occurrence in normalized text,
    /// whole-word keywords only where they stand alone: the big automaton's first, then the
    /// new keywords'.
    pub fn find(&self, text: &str, mut found: impl FnMut(KeywordOwner, usize, usize)) {
        let automata = self.base.as_deref().into_iter().chain(&self.added);
        for automaton in automata {
            automaton
                .search
                .find_overlapping(text, |start, end, pattern| {
                    let (lo, hi) = self.ranges[pattern as usize];
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
                });
        }
    }

    /// Folds `text` into `normalized` as [`Normalized::fold_with_letters`] does, its letters
    /// kept in the skeleton and read through the [`LetterGate`]; returns whether the text
    /// may hold a keyword: a keyword found in the collapsed text has its letters in a row
    /// there, and every keyword's letters alone are a pattern too (the joined form
    /// [`KeywordPatterns::add_keyword`] adds), so the automata, searching the letters of a
    /// text the gate lets through, find one whenever the collapsed text holds one. Most
    /// texts are turned away by the gate, and only the rest are collapsed and searched.
    /// `None`, and nothing folded, when letters alone cannot rule keywords out (a keyword's
    /// letters are no pattern of their own: a keyword of separators alone).
    /// `folded` is handed the letters as soon as they are read, before the gate, so that work
    /// waiting on memory can be started early.
    pub(crate) fn fold_and_filter(
        &self,
        normalized: &mut Normalized,
        text: &str,
        folded: &mut impl FnMut(&[u32]),
    ) -> Option<bool> {
        let gate = self.gate.as_ref()?;
        normalized.fold_with_letters(text, true);
        folded(&normalized.skeleton);
        let letters = &normalized.skeleton[..];
        // The search starts where the first keyword may start, not at the first letter: the
        // letters before it were read by the gate already.
        Some(gate.first_through(letters).is_some_and(|at| {
            let from = &letters[at.saturating_sub(RUN_REACH)..];
            self.base
                .as_deref()
                .into_iter()
                .chain(&self.added)
                .any(|automaton| automaton.search.finds_any(from))
        }))
    }

    /// Whether there is no keyword to find.
    pub fn is_empty(&self) -> bool {
        self.owners.is_empty()
    }

    /// Heap bytes of the automata and owner tables.
    pub fn heap_bytes(&self) -> usize {
        let automata = self.base.as_deref().into_iter().chain(&self.added);
        automata.map(|a| a.search.heap_bytes()).sum::<usize>()
            + self.gate.as_ref().map_or(0, LetterGate::heap_bytes)
            + self.ranges.len() * 8
            + self.owners.len() * size_of::<KeywordOwner>()
    }

    /// Whether the last compile built the big automaton afresh (no previous one was reused).
    #[cfg(test)]
    pub fn added_patterns(&self) -> Option<usize> {
        self.added.as_ref().map(|a| a.ids.len())
    }

    #[cfg(test)]
    pub fn shares_base_with(&self, other: &KeywordIndex) -> bool {
        match (&self.base, &other.base) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl fmt::Debug for KeywordIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeywordIndex")
            .field("patterns", &self.ranges.len())
            .field("added", &self.added.as_ref().map_or(0, |a| a.ids.len()))
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

    /// Adds a keyword's sound (see [`crate::normalize::sound_mapped`]) as it is.
    pub(super) fn add_sound(&mut self, sound: String, owner: KeywordOwner) {
        self.add(sound, owner);
    }

    fn add(&mut self, normalized: String, owner: KeywordOwner) {
        let next = self.texts.len() as u32;
        let id = *self.by_text.entry(normalized).or_insert_with_key(|text| {
            self.texts.push(text.clone());
            next
        });
        self.owned.push((id, owner));
    }

    /// Builds the index, reusing `previous`'s big automaton when the keywords changed little.
    pub(super) fn build(self, previous: Option<&KeywordIndex>) -> Result<KeywordIndex, String> {
        let KeywordPatterns {
            texts,
            owned,
            by_text,
        } = self;
        if texts.is_empty() {
            return Ok(KeywordIndex::default());
        }
        let letters_are_patterns = texts.iter().all(|text| {
            text.chars().all(in_skeleton) || {
                let letters = letters_only(text);
                !letters.is_empty() && by_text.contains_key(&letters)
            }
        });
        let gate = letters_are_patterns.then(|| {
            LetterGate::of(
                texts
                    .iter()
                    .map(String::as_str)
                    .filter(|text| text.chars().all(in_skeleton)),
            )
        });
        let base = previous.and_then(|p| p.base.clone());
        // The new patterns, and the id of each of this compile's patterns.
        let (ids, base, added) = match base {
            Some(base) => {
                let base_len = base.ids.len() as u32;
                let mut added = Vec::new();
                let mut owned_in_base = 0usize;
                let ids: Vec<u32> = texts
                    .iter()
                    .map(|text| match base.ids.get(text) {
                        Some(&id) => {
                            owned_in_base += 1;
                            id
                        }
                        None => {
                            added.push(text.clone());
                            base_len + added.len() as u32 - 1
                        }
                    })
                    .collect();
                let unowned = base.ids.len() - owned_in_base;
                if added.len() * 20 > base.ids.len() || unowned * 4 > base.ids.len() {
                    rebuilt(texts)?
                } else {
                    let added = if added.is_empty() {
                        None
                    } else {
                        Some(Automaton::build(added, base_len)?)
                    };
                    (ids, Some(base), added)
                }
            }
            None => rebuilt(texts)?,
        };
        let patterns =
            base.as_ref().map_or(0, |b| b.ids.len()) + added.as_ref().map_or(0, |a| a.ids.len());
        let mut owned: Vec<(u32, KeywordOwner)> = owned
            .into_iter()
            .map(|(text, owner)| (ids[text as usize], owner))
            .collect();
        owned.sort_by_key(|(pattern, _)| *pattern);
        let mut ranges = vec![(0u32, 0u32); patterns];
        let mut owners = Vec::with_capacity(owned.len());
        for (pattern, owner) in owned {
            let range = &mut ranges[pattern as usize];
            if range.0 == range.1 {
                range.0 = owners.len() as u32;
            }
            owners.push(owner);
            range.1 = owners.len() as u32;
        }
        Ok(KeywordIndex {
            base,
            added,
            ranges,
            owners,
            gate,
        })
    }
}

/// Pattern ids, the big automaton and the new patterns' automaton.
type Built = (Vec<u32>, Option<Arc<Automaton>>, Option<Automaton>);

/// A big automaton built afresh over every pattern, numbered as they were added.
fn rebuilt(texts: Vec<String>) -> Result<Built, String> {
    let ids = (0..texts.len() as u32).collect();
    Ok((ids, Some(Arc::new(Automaton::build(texts, 0)?)), None))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::normalize::normalize;

    /// Pieces keywords and texts are made of: words and letters of both kinds of script,
    /// separators plain and disguised, full-width letters, digits.
    const PIECES: &[&str] = &[
        "a", "b", "ab", "free", "gift", "v", "x", "1", "８", "Ｆ", "é", "微", "信", "加", "薇",
        " ", "-", ".", ",", "，", "。", "\u{200B}", "🌹", "!", "c++", "¥",
    ];

    fn text_of(pieces: &[usize]) -> String {
        pieces.iter().map(|&p| PIECES[p]).collect()
    }

    fn index_of(keywords: &[String], previous: Option<&KeywordIndex>) -> KeywordIndex {
        let mut patterns = KeywordPatterns::default();
        for (i, keyword) in keywords.iter().enumerate() {
            let owner = KeywordOwner {
                rule: 0,
                keyword: i as u32,
                whole_word: i % 3 == 0,
            };
            patterns.add_keyword(normalize(keyword), owner);
        }
        patterns.build(previous).expect("builds")
    }

    /// Whether the letter filter lets `text` through, and what a search of its collapsed form
    /// finds.
    fn filtered_and_found(index: &KeywordIndex, text: &str) -> (Option<bool>, usize) {
        let mut normalized = Normalized::default();
        normalized.of(text);
        let mut found = 0;
        index.find(&normalized.collapsed, |_, _, _| found += 1);
        let passes = index.fold_and_filter(&mut normalized, text, &mut |_| {});
        (passes, found)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3_000))]
        #[test]
        fn a_text_the_letter_filter_turns_away_holds_no_keyword(
            keywords in prop::collection::vec(prop::collection::vec(0..PIECES.len(), 1..4), 1..6),
            text in prop::collection::vec(0..PIECES.len(), 0..20),
        ) {
            let keywords: Vec<String> = keywords
                .iter()
                .map(|k| text_of(k))
                .filter(|k| !normalize(k).is_empty())
                .collect();
            prop_assume!(!keywords.is_empty());
            let index = index_of(&keywords, None);
            let (passes, found) = filtered_and_found(&index, &text_of(&text));
            // A keyword of separators alone cannot be ruled out by letters: no filter then.
            let letterless = keywords.iter().any(|k| letters_only(&normalize(k)).is_empty());
            prop_assert_eq!(passes.is_none(), letterless);
            prop_assert!(found == 0 || passes != Some(false), "found {} keywords", found);
        }
    }

    #[test]
    fn the_filter_reads_the_new_keywords_automaton_too() {
        let base: Vec<String> = (0..100).map(|i| format!("word{i}")).collect();
        let first = index_of(&base, None);
        let mut more = base;
        more.push("加 微 信".to_owned());
        let index = index_of(&more, Some(&first));
        assert_eq!(index.added_patterns(), Some(1), "one new automaton");
        // Spelled out, it is found in the collapsed text and passes the filter.
        assert_eq!(
            filtered_and_found(&index, "快来 加-微-信 吧"),
            (Some(true), 1)
        );
        assert_eq!(filtered_and_found(&index, "word7 here"), (Some(true), 1));
        assert_eq!(filtered_and_found(&index, "加 微 博 吧"), (Some(false), 0));
        // A keyword of separators alone turns the filter off; the search still finds it.
        more.push("!!!".to_owned());
        let index = index_of(&more, Some(&first));
        assert_eq!(filtered_and_found(&index, "wow!!!"), (None, 1));
    }
}
