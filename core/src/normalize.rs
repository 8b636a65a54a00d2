//! Text normalization: the defence against evasion.
//!
//! Keywords and messages go through the same two stages, so a keyword matches every spelling
//! that folds to the same text.
//!
//! **Stage 1, folding** ([`fold`]), character by character:
//!
//! | evasion | example | folded |
//! |---|---|---|
//! | compatibility forms (Unicode NFKC/NFKD compatibility mapping) | `ｗｅｃｈａｔ`, `①`, `㎏` | `wechat`, `1`, `kg` |
//! | full-width → half-width (part of the compatibility mapping) | `ＶＸ：１２３` | `vx:123` |
//! | case | `WeChat` | `wechat` |
//! | diacritics and stacked marks (combining marks are dropped) | `wéchàt`, `s̷p̷a̷m̷` | `wechat`, `spam` |
//! | zero-width and invisible characters removed | `微\u{200B}信`, `we\u{2060}chat` | `微信`, `wechat` |
//! | traditional → simplified Chinese (OpenCC table) | `加微信號`, `賺錢` | `加微信号`, `赚钱` |
//!
//! Links, phone numbers and regexes run on the folded text.
//!
//! **Stage 2, separator collapse** ([`collapse`]), for keywords: separators (anything that is
//! not a letter or digit) are removed where they split a word apart:
//!
//! * between two CJK characters (`微 信`, `微.信`, `微★信` → `微信`), unless the separator is a
//!   sentence break (`，。、！？；：` or a line break), which keeps `…微，信任…` from matching `微信`;
//! * between single letters or digits (`w-e-c-h-a-t`, `v x` → `wechat`, `vx`), sentence breaks
//!   included;
//! * a CJK character next to a single letter (`加 v`) counts as both, and a letter glued to
//!   CJK text counts as single (`加v x` → `加vx`).
//!
//! Ordinary spacing between words (`hello world`, `我爱 rust`) is kept, so whole-word matching
//! still works. Both stages are idempotent.

use std::ops::Range;
use std::sync::OnceLock;

use rustc_hash::FxHashMap;
use unicode_normalization::char::{decompose_compatible, is_combining_mark};

/// Folds then collapses: the text keywords are matched against.
pub fn normalize(input: &str) -> String {
    collapse(&fold(input))
}

/// Stage 1: compatibility mapping, lower case, no marks, no invisibles, simplified Chinese.
pub fn fold(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    fold_into(input, &mut out);
    out
}

/// [`fold`] appending to a buffer the caller reuses.
pub fn fold_into(input: &str, out: &mut String) {
    fold_chars(input, |c, _| out.push(c));
}

/// Stage 2: removes separators that split words apart. Expects folded text.
pub fn collapse(folded: &str) -> String {
    let mut out = String::with_capacity(folded.len());
    collapse_into(folded, &mut out);
    out
}

/// [`collapse`] appending to a buffer the caller reuses.
pub fn collapse_into(folded: &str, out: &mut String) {
    collapse_ranges(folded, |range| out.push_str(&folded[range]));
}

/// Normalized text with, for every output byte, the input byte range it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped {
    /// The normalized text.
    pub text: String,
    /// For each output char: its output byte offset and the input byte range it came from.
    origins: Vec<(u32, u32, u32)>,
}

impl Mapped {
    /// The input byte range that produced output bytes `start..end`.
    pub fn source_span(&self, start: usize, end: usize) -> Range<usize> {
        if self.origins.is_empty() || start >= end {
            return 0..0;
        }
        let index_of = |byte: usize| {
            let byte = u32::try_from(byte).unwrap_or(u32::MAX);
            match self.origins.binary_search_by_key(&byte, |o| o.0) {
                Ok(i) => i,
                Err(i) => i.saturating_sub(1),
            }
        };
        let first = self.origins[index_of(start)];
        let last = self.origins[index_of(end - 1)];
        first.1 as usize..last.2 as usize
    }
}

/// [`fold`] with a map back to the input.
pub fn fold_mapped(input: &str) -> Mapped {
    let mut text = String::with_capacity(input.len());
    let mut origins = Vec::with_capacity(input.len());
    fold_chars(input, |c, (start, end)| {
        origins.push((text.len() as u32, start as u32, end as u32));
        text.push(c);
    });
    Mapped { text, origins }
}

/// [`normalize`] with a map back to the input.
pub fn normalize_mapped(input: &str) -> Mapped {
    let folded = fold_mapped(input);
    let mut text = String::with_capacity(folded.text.len());
    let mut origins = Vec::with_capacity(folded.origins.len());
    // Origins are in output order, so a cursor finds each kept char's origin.
    let mut cursor = 0;
    collapse_ranges(&folded.text, |range| {
        while folded.origins[cursor].0 < range.start as u32 {
            cursor += 1;
        }
        for c in folded.text[range].chars() {
            let (_, start, end) = folded.origins[cursor];
            origins.push((text.len() as u32, start, end));
            text.push(c);
            cursor += 1;
        }
    });
    Mapped { text, origins }
}

/// Calls `emit(char, input_range)` for each folded character.
fn fold_chars(input: &str, mut emit: impl FnMut(char, (usize, usize))) {
    let t2s = t2s();
    for (start, c) in input.char_indices() {
        let span = (start, start + c.len_utf8());
        if c.is_ascii() {
            emit(c.to_ascii_lowercase(), span);
        } else if ('\u{4E00}'..='\u{9FFF}').contains(&c) {
            // The common CJK block has no compatibility forms and no case.
            emit(t2s.simplify(c), span);
        } else if is_invisible(c) {
        } else if ('\u{AC00}'..='\u{D7A3}').contains(&c) {
            // Hangul syllables stay whole rather than decomposing into jamo.
            emit(c, span);
        } else {
            decompose_compatible(c, |d| {
                for lower in d.to_lowercase() {
                    decompose_compatible(lower, |x| {
                        if !is_combining_mark(x) && !is_invisible(x) {
                            emit(t2s.simplify(x), span);
                        }
                    });
                }
            });
        }
    }
}

/// Characters that render as nothing: zero-width spaces and joiners, bidi controls, variation
/// selectors, fillers, tags (Unicode Default_Ignorable_Code_Point plus the braille blank).
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}'..='\u{1160}' | '\u{17B4}'..='\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{2800}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}'
        | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF0}'..='\u{FFF8}' | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}')
}

/// Han ideographs and kana: scripts written without spaces between words.
pub fn is_cjk(c: char) -> bool {
    matches!(c,
        '\u{3040}'..='\u{30FF}' | '\u{3400}'..='\u{4DBF}' | '\u{4E00}'..='\u{9FFF}'
        | '\u{F900}'..='\u{FAFF}' | '\u{20000}'..='\u{3134F}')
}

/// A letter or digit of any script; quick for ASCII and CJK, which is nearly all chat text.
pub fn is_letter_or_digit(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphanumeric()
    } else {
        is_cjk(c) || c.is_alphanumeric()
    }
}

/// A letter or digit of a script that separates words with spaces.
pub fn is_word_char(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphanumeric()
    } else {
        !is_cjk(c) && c.is_alphanumeric()
    }
}

fn is_separator(c: char) -> bool {
    !is_letter_or_digit(c)
}

/// Separators that end a clause; collapsed only between single characters.
fn is_sentence_break(c: char) -> bool {
    matches!(
        c,
        ',' | '!' | '?' | ';' | ':' | '\n' | '\r' | '\u{2028}' | '\u{2029}' | '。' | '、'
    )
}

/// Calls `keep(i)` for each index of `chars` that survives separator collapse.
fn collapse_ranges(text: &str, mut keep: impl FnMut(Range<usize>)) {
    let mut chars = text.char_indices().peekable();
    // Length (capped at 2) of the last one-script run before the separator run, and its last char.
    let mut left: Option<(usize, char)> = None;
    while let Some(&(start, first)) = chars.peek() {
        if !is_separator(first) {
            // The length of the segment's last run of one script: `加v x` splits `v` off `加`.
            let (mut run, mut last, mut end) = (0, first, start);
            while let Some(&(i, c)) = chars.peek().filter(|(_, c)| !is_separator(*c)) {
                run = if is_cjk(c) == is_cjk(last) {
                    run + 1
                } else {
                    1
                };
                (last, end) = (c, i + c.len_utf8());
                chars.next();
            }
            keep(start..end);
            left = Some((run.min(2), last));
            continue;
        }
        let (mut end, mut has_break) = (start, false);
        while let Some(&(i, c)) = chars.peek().filter(|(_, c)| is_separator(*c)) {
            has_break |= is_sentence_break(c);
            end = i + c.len_utf8();
            chars.next();
        }
        let right = chars.peek().map(|&(i, c)| {
            let next = text[i + c.len_utf8()..].chars().next();
            let single = next.is_none_or(|n| is_separator(n) || is_cjk(n) != is_cjk(c));
            (if single { 1 } else { 2 }, c)
        });
        let remove = match (left, right) {
            (Some((left_len, left_char)), Some((right_len, right_char))) => {
                let both_single = left_len == 1 && right_len == 1;
                let joins_word =
                    (is_cjk(left_char) || left_len == 1) && (is_cjk(right_char) || right_len == 1);
                both_single || (joins_word && !has_break)
            }
            _ => false,
        };
        if !remove {
            keep(start..end);
        }
    }
}

/// Traditional → simplified, one character at a time, from OpenCC's character table.
struct T2s {
    /// One bit per BMP code point that has a mapping, so most lookups never hash.
    bmp_has_mapping: Box<[u64]>,
    map: FxHashMap<char, char>,
}

impl T2s {
    fn simplify(&self, c: char) -> char {
        let cp = c as usize;
        if cp < 0x10000 && self.bmp_has_mapping[cp / 64] & (1 << (cp % 64)) == 0 {
            return c;
        }
        self.map.get(&c).copied().unwrap_or(c)
    }
}

fn t2s() -> &'static T2s {
    static TABLE: OnceLock<T2s> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut map = FxHashMap::default();
        for &table in zhconv::get_builtin_tables(zhconv::Variant::ZhHans) {
            for (from, to) in zhconv::tables::expand_table(table) {
                let mut from = from.chars();
                let mut to = to.chars();
                if let (Some(f), None, Some(t), None) =
                    (from.next(), from.next(), to.next(), to.next())
                    && f != t
                {
                    map.insert(f, t);
                }
            }
        }
        // Follow chains (a → b → c) so simplifying twice changes nothing.
        let keys: Vec<char> = map.keys().copied().collect();
        for key in keys {
            let mut target = map[&key];
            for _ in 0..4 {
                match map.get(&target) {
                    Some(&next) if next != target => target = next,
                    _ => break,
                }
            }
            map.insert(key, target);
        }
        map.retain(|k, v| k != v);
        let mut bmp_has_mapping = vec![0u64; 0x10000 / 64].into_boxed_slice();
        for &c in map.keys() {
            let cp = c as usize;
            if cp < 0x10000 {
                bmp_has_mapping[cp / 64] |= 1 << (cp % 64);
            }
        }
        T2s {
            bmp_has_mapping,
            map,
        }
    })
}

#[cfg(test)]
mod tests;
