//! The event's text: folded, collapsed and searched once for every rule.

use std::cell::OnceCell;

use crate::compile::{CompiledRules, KeywordOwner};
use crate::detect::links::{LinkHit, find_links_among};
use crate::detect::phone::{PhoneHit, find_phones_among};
use crate::normalize::{
    Mapped, Normalized, collapsed_source, fold_literal, folded_source, sound_into,
};
use crate::rule::PhoneKind;
use crate::verdict::Evidence;

/// Buffers reused from one evaluation to the next, so judging a message rarely allocates.
#[derive(Debug, Default)]
pub(super) struct Scratch {
    pub(super) normalized: Normalized,
    pub(super) keyword_hits: Vec<(KeywordOwner, usize, usize)>,
    pub(super) sound: Mapped,
}

/// The event's text, normalized once and searched once for all rules, in the engine's
/// buffers.
pub(super) struct TextAnalysis<'a> {
    pub(super) raw: &'a str,
    /// Folded (look-alikes mapped; what regexes see) and collapsed (what keywords see).
    pub(super) normalized: &'a Normalized,
    /// Folded as written, for links and phone numbers, when look-alikes made it differ.
    pub(super) literal: Option<String>,
    pub(super) keyword_hits: &'a [(KeywordOwner, usize, usize)],
    pub(super) links: OnceCell<Vec<LinkHit>>,
    pub(super) phones: OnceCell<Vec<PhoneHit>>,
}

impl<'a> TextAnalysis<'a> {
    /// Normalizes and searches `raw` in the buffers of `scratch`; the letters-only skeleton
    /// only when `need_skeleton` (a duplicate check runs). `folded` is handed the skeleton as
    /// soon as the text is folded, before the search.
    pub(super) fn new(
        raw: &'a str,
        rules: &CompiledRules,
        need_keywords: bool,
        need_skeleton: bool,
        scratch: &'a mut Scratch,
        mut folded: impl FnMut(&[u32]),
    ) -> TextAnalysis<'a> {
        let Scratch {
            normalized,
            keyword_hits,
            sound,
            ..
        } = scratch;
        // Only keywords read the collapsed text: without them, or when the text's letters
        // rule every keyword out, it is not written. Sounds are read from it.
        let filtered = (need_keywords && rules.homophones.is_empty())
            .then(|| rules.keywords.fold_and_filter(normalized, raw, &mut folded))
            .flatten();
        let search = match (need_keywords, filtered) {
            (false, _) => {
                normalized.fold_with_letters(raw, need_skeleton);
                folded(&normalized.skeleton);
                false
            }
            (true, Some(may_hold)) => {
                if may_hold {
                    normalized.collapse_folded();
                }
                may_hold
            }
            (true, None) => {
                normalized.fold_with_letters(raw, need_skeleton);
                folded(&normalized.skeleton);
                normalized.collapse_folded();
                true
            }
        };
        let literal = normalized.lookalikes.then(|| fold_literal(raw));
        let collapsed = &normalized.collapsed;
        keyword_hits.clear();
        if search {
            rules.keywords.find(collapsed, |owner, start, end| {
                keyword_hits.push((owner, start, end))
            });
            // Only text with CJK characters (three-byte UTF-8 and up) can sound like a keyword.
            if !rules.homophones.is_empty() && collapsed.bytes().any(|b| b >= 0xE0) {
                sound_into(collapsed, sound);
                rules.homophones.find(&sound.text, |owner, start, end| {
                    let span = sound.source_span(start, end);
                    keyword_hits.push((owner, span.start, span.end));
                });
            }
        }
        TextAnalysis {
            raw,
            normalized,
            literal,
            keyword_hits,
            links: OnceCell::new(),
            phones: OnceCell::new(),
        }
    }

    /// Evidence for a span of the folded text. Spans are traced back by normalizing again
    /// (only a message with evidence pays for it), not by a map kept for every message.
    pub(super) fn folded_term(&self, term: String, start: usize, end: usize) -> Evidence {
        self.term(term, folded_source(self.raw, true, start..end))
    }

    /// The text links and phone numbers are searched in.
    pub(super) fn literal(&self) -> &str {
        self.literal.as_deref().unwrap_or(&self.normalized.folded)
    }

    /// Evidence for a span of [`Self::literal`].
    pub(super) fn literal_term(&self, term: String, start: usize, end: usize) -> Evidence {
        // Without look-alikes in the text, both folds are the same.
        self.term(term, folded_source(self.raw, false, start..end))
    }

    /// Evidence for a span of the collapsed text.
    pub(super) fn collapsed_term(&self, term: String, start: usize, end: usize) -> Evidence {
        let span = collapsed_source(self.raw, &self.normalized.folded, start..end);
        self.term(term, span)
    }

    pub(super) fn term(&self, term: String, span: std::ops::Range<usize>) -> Evidence {
        Evidence::Term {
            term,
            matched: self.raw.get(span.clone()).unwrap_or_default().to_owned(),
            span,
        }
    }

    pub(super) fn links(&self) -> &[LinkHit] {
        self.links.get_or_init(|| {
            // Look-alikes are letters, so the literal text holds the same link characters.
            find_links_among(self.literal(), self.normalized.link_chars)
        })
    }

    pub(super) fn phones(&self) -> &[PhoneHit] {
        self.phones.get_or_init(|| {
            find_phones_among(
                self.literal(),
                self.normalized.digits,
                &[
                    PhoneKind::Mobile,
                    PhoneKind::Landline,
                    PhoneKind::International,
                ],
            )
        })
    }
}
