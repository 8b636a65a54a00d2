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
//! | enclosed and mathematical letters and digits (the compatibility mapping, and a table for those it leaves out) | `Ⓦⓔ𝐜𝓱𝕒𝘁`, `🅆🄴🄲🄷🄰🅃`, `🅦🅔🅒🅗🅐🅣`, `🇼🇪🇨🇭🇦🇹`, `❶⓶➂` | `wechat`, `123` |
//! | full-width → half-width (part of the compatibility mapping) | `ＶＸ：１２３` | `vx:123` |
//! | case | `WeChat` | `wechat` |
//! | diacritics and stacked marks (combining marks are dropped) | `wéchàt`, `s̷p̷a̷m̷` | `wechat`, `spam` |
//! | zero-width and invisible characters removed | `微\u{200B}信`, `we\u{2060}chat` | `微信`, `wechat` |
//! | traditional → simplified Chinese (OpenCC table) | `加微信號`, `賺錢` | `加微信号`, `赚钱` |
//! | Cyrillic and Greek look-alikes of Latin letters (Unicode confusables), before case folding | `саsinо`, `ΝΙΚΕ` | `casino`, `nike` |
//!
//! Look-alikes are mapped only inside words that also have a Latin letter (`саsinо`), or whose
//! every letter looks Latin (`саѕіnо`); Russian or Greek words stay as written. Hosts never get
//! this mapping ([`fold_literal`]): `аpple.com` with a Cyrillic `а` is another domain, and must
//! count as one. Phone numbers and links run on the literal fold; regexes and keywords on the
//! fold with look-alikes mapped.
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
//! Where the line is: a separator run between two words of two or more letters (`we chat`,
//! `替代，购买`) is never removed, so ordinary sentences and lists are not glued into keywords.
//! A letter written against a word belongs to that word: in `sal e w z v l i f dle` the run
//! `w z v l i f` is joined, but `sale` and `dle` keep their letters, so initials next to words
//! (`plan b for`) are not glued into them.
//! What stays is written in one canonical form, a space, or `,` where the run held a sentence
//! break, so `free gift`, `free-gift`, `free.gift` and `free / gift` read alike. Separators
//! are anything but letters and digits: spaces, dots, dashes, slashes, tildes, middle dots of
//! every width (`·`, `・`, `･`), CJK commas (`，`, `、`), emoji and symbols. Both stages are
//! idempotent.
//!
//! Keyword lists that ask for homophones are also searched in the collapsed text's sound
//! ([`sound_mapped`]: toneless pinyin syllables), so `薇信`, `威信` and `V信` match `微信`.

use std::ops::Range;
use std::sync::OnceLock;

use rustc_hash::FxHashMap;
use unicode_normalization::char::{decompose_compatible, is_combining_mark};

/// Folds then collapses: the text keywords are matched against.
pub fn normalize(input: &str) -> String {
    collapse(&fold(input))
}

/// A text folded and collapsed in one pass, with counts the checks after it use. Reused
/// from one message to the next, so normalizing rarely allocates.
#[derive(Debug, Default, Clone)]
pub struct Normalized {
    /// Stage 1, look-alikes mapped: what regexes see.
    pub folded: String,
    /// Stage 2: what keywords see.
    pub collapsed: String,
    /// The letters and digits alone, in order, by code point: what duplicate texts are
    /// compared by and keywords are ruled out by. Empty when not asked for
    /// ([`Normalized::of_text`]).
    pub skeleton: Vec<u32>,
    /// How many letters and digits there are.
    pub letters: usize,
    /// How many characters could be digits of a phone number (ASCII digits, Chinese numerals).
    pub digits: usize,
    /// Whether a look-alike was mapped (then [`fold_literal`] differs from `folded`).
    pub lookalikes: bool,
    /// The characters of `folded` a link may be written with.
    pub link_chars: LinkChars,
}

impl Normalized {
    /// Folds and collapses `input`, replacing what was here.
    pub fn of(&mut self, input: &str) {
        self.of_text(input, true);
    }

    /// As [`Normalized::of`], keeping the letters-only `skeleton` only `with_skeleton`.
    pub fn of_text(&mut self, input: &str, with_skeleton: bool) {
        self.fold_with_letters(input, with_skeleton);
        self.collapse_folded();
    }

    /// Stage 2 of the folded text: `collapsed` and `letters`.
    pub fn collapse_folded(&mut self) {
        self.collapsed.clear();
        self.letters = collapse_to(&self.folded, &mut self.collapsed);
    }

    /// Stage 1, and what collapse would keep of the folded text but its separators, read in
    /// the same pass, without collapsing: `letters` counts the letters and digits, and
    /// `skeleton` (`with_skeleton`) holds them in order, as collapse keeps them. Any text
    /// found in `collapsed` has its letters and digits in a row there, so a search of them
    /// can rule a keyword out without collapsing. `collapsed` is left empty.
    #[inline]
    pub fn fold_with_letters(&mut self, input: &str, with_skeleton: bool) {
        self.folded.clear();
        self.collapsed.clear();
        self.skeleton.clear();
        // No more letters than bytes: kept without growing on the way.
        self.skeleton.reserve(input.len());
        let mut sink = NotingLetters {
            noting: Noting {
                out: &mut self.folded,
                numerals: 0,
                link_chars: LinkChars::NONE,
            },
            skeleton: &mut self.skeleton,
        };
        self.lookalikes = fold_chars(input, true, &mut sink);
        self.digits = sink.noting.numerals;
        self.link_chars = sink.noting.link_chars;
        self.letters = self.skeleton.len();
        if !with_skeleton {
            self.skeleton.clear();
        }
    }
}

/// The letters and digits of `text` alone: what [`Normalized::fold_with_letters`] keeps.
pub(crate) fn letters_only(text: &str) -> String {
    text.chars().filter(|&c| in_skeleton(c)).collect()
}

/// Whether `c` is a letter or digit, which the skeleton keeps, not a separator.
pub(crate) fn in_skeleton(c: char) -> bool {
    !Class::of(c).is_separator()
}

/// Collapses `folded` onto `out`. Returns how many letters and digits there are.
fn collapse_to(folded: &str, out: &mut String) -> usize {
    collapse_pieces(folded, &mut PieceWriter { folded, out })
}

/// Receives the pieces of a collapsed text.
trait PieceSink {
    fn piece(&mut self, piece: Piece);

    /// Whether the sink needs no more pieces: collapse stops.
    fn done(&self) -> bool {
        false
    }
}

impl<F: FnMut(Piece)> PieceSink for F {
    fn piece(&mut self, piece: Piece) {
        self(piece)
    }
}

/// Writes collapsed text.
struct PieceWriter<'a> {
    folded: &'a str,
    out: &'a mut String,
}

impl PieceSink for PieceWriter<'_> {
    #[inline(always)]
    fn piece(&mut self, piece: Piece) {
        match piece {
            Piece::Word(range) | Piece::Separators(range) => {
                self.out.push_str(&self.folded[range]);
            }
            Piece::Canonical(c, _) => self.out.push(c),
        }
    }
}

/// Characters a link may be written with: the `:` of a scheme, dots plain and disguised
/// (`.`, `。` after a Latin label, `点`, the brackets of `(.)` and `(dot)`, the `d` of
/// ` dot `). Noted while text is folded, so the link check searches a text only for those it
/// holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkChars(u8);

impl LinkChars {
    /// None of them.
    pub const NONE: LinkChars = LinkChars(0);
    /// `:`
    pub const COLON: LinkChars = LinkChars(1 << 1);
    /// `.`
    pub const DOT: LinkChars = LinkChars(1 << 2);
    /// `(`, `[` and `{`.
    pub const BRACKET: LinkChars = LinkChars(1 << 3);
    /// `。` after a Latin label ([`after_latin_label`]), the only place it may stand for a
    /// dot: Chinese text ends its sentences with it.
    pub const FULL_STOP: LinkChars = LinkChars(1 << 4);
    /// `点`
    pub const DIAN: LinkChars = LinkChars(1 << 5);
    /// `d` and `D`.
    pub const LETTER_D: LinkChars = LinkChars(1 << 6);
    /// Every one of them: what to assume of a text nobody noted.
    pub const ALL: LinkChars = LinkChars(0b111_1110);

    /// Whether all of `other` is among these.
    pub fn contains(self, other: LinkChars) -> bool {
        self.0 & other.0 == other.0
    }

    /// Those among [`ASCII_NOTES`] bits.
    #[inline(always)]
    fn of_notes(notes: u16) -> LinkChars {
        LinkChars((notes & u16::from(LinkChars::ALL.0)) as u8)
    }

    /// What `c` is of them.
    #[inline]
    pub fn of(c: char) -> LinkChars {
        match c {
            '\0'..='\x7F' => LinkChars::of_notes(ASCII_NOTES[c as usize]),
            '。' => LinkChars::FULL_STOP,
            '点' => LinkChars::DIAN,
            _ => LinkChars::NONE,
        }
    }

    /// What `c` is of them, after the text `before`.
    #[inline]
    fn of_after(c: char, before: &str) -> LinkChars {
        match LinkChars::of(c) {
            LinkChars::FULL_STOP if !after_latin_label(before) => LinkChars::NONE,
            chars => chars,
        }
    }

    /// Those `text` holds.
    pub fn in_text(text: &str) -> LinkChars {
        text.char_indices().fold(LinkChars::NONE, |chars, (at, c)| {
            chars | LinkChars::of_after(c, &text[..at])
        })
    }
}

impl std::ops::BitOr for LinkChars {
    type Output = LinkChars;

    fn bitor(self, other: LinkChars) -> LinkChars {
        LinkChars(self.0 | other.0)
    }
}

impl std::ops::BitOrAssign for LinkChars {
    fn bitor_assign(&mut self, other: LinkChars) {
        self.0 |= other.0;
    }
}

/// Whether `text` ends with a Latin label (an ASCII letter or digit, or a `-` a label may end
/// with), spaces after it aside: where a disguised dot may follow.
pub(crate) fn after_latin_label(text: &str) -> bool {
    text.trim_end_matches(' ')
        .bytes()
        .next_back()
        .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Per ASCII character: bit 0 for a digit, the bits of [`LinkChars`] for those,
/// [`ASCII_LETTER`] for a letter or digit, [`ASCII_CAPITAL`] for a capital.
const ASCII_NOTES: [u16; 128] = {
    let mut notes = [0u16; 128];
    let mut b = 0;
    while b < 128 {
        if (b as u8).is_ascii_alphanumeric() {
            notes[b] = ASCII_LETTER;
        }
        if (b as u8).is_ascii_uppercase() {
            notes[b] |= ASCII_CAPITAL;
        }
        b += 1;
    }
    let mut digit = b'0';
    while digit <= b'9' {
        notes[digit as usize] |= 1;
        digit += 1;
    }
    notes[b':' as usize] = LinkChars::COLON.0 as u16;
    notes[b'.' as usize] = LinkChars::DOT.0 as u16;
    notes[b'(' as usize] = LinkChars::BRACKET.0 as u16;
    notes[b'[' as usize] = LinkChars::BRACKET.0 as u16;
    notes[b'{' as usize] = LinkChars::BRACKET.0 as u16;
    notes[b'd' as usize] |= LinkChars::LETTER_D.0 as u16;
    notes[b'D' as usize] |= LinkChars::LETTER_D.0 as u16;
    notes
};

/// The bit of [`ASCII_NOTES`] for a letter or digit (the bit [`LinkChars`] leaves free).
const ASCII_LETTER: u16 = 1 << 7;
/// The bit of [`ASCII_NOTES`] for a capital letter.
const ASCII_CAPITAL: u16 = 1 << 8;

/// What folding noted in a run: its ASCII digits and Chinese numerals, its link characters,
/// and whether it has ASCII capitals.
#[derive(Debug, Clone, Copy)]
struct RunNotes {
    numerals: usize,
    link_chars: LinkChars,
    capitals: bool,
}

impl RunNotes {
    /// Of `run`, from its count of Chinese numerals and the [`ASCII_NOTES`] bits gathered
    /// over it. Its ASCII digits are counted here, in the few runs that have any, rather than
    /// byte by byte as it is read.
    fn of(run: &str, cjk_numerals: usize, notes: u16) -> RunNotes {
        let digits = if notes & 1 != 0 {
            run.bytes().filter(u8::is_ascii_digit).count()
        } else {
            0
        };
        RunNotes {
            numerals: cjk_numerals + digits,
            link_chars: LinkChars::of_notes(notes),
            capitals: notes & ASCII_CAPITAL != 0,
        }
    }
}

/// A digit as phone numbers may be written: ASCII, or a Chinese numeral (`一`, `壹`, `幺`, `两`).
#[inline]
pub fn numeral_value(c: char) -> Option<u8> {
    // Most characters are no numeral: the bitmap says so before the long match is tried.
    if is_numeral(c) { numeral_of(c) } else { None }
}

/// [`numeral_value`] by one match over every numeral.
const fn numeral_of(c: char) -> Option<u8> {
    Some(match c {
        '0'..='9' => c as u8 - b'0',
        '零' | '〇' | '○' => 0,
        '一' | '壹' | '幺' => 1,
        '二' | '贰' | '两' => 2,
        '三' | '叁' => 3,
        '四' | '肆' => 4,
        '五' | '伍' => 5,
        '六' | '陆' => 6,
        '七' | '柒' => 7,
        '八' | '捌' => 8,
        '九' | '玖' => 9,
        _ => return None,
    })
}

const COMMON_CJK: u32 = 0x4E00;

/// Whether bit `at` of a bitmap is set.
#[inline(always)]
const fn has_bit(bits: &[u64], at: usize) -> bool {
    bits[at / 64] & (1 << (at % 64)) != 0
}

/// Sets bit `at` of a bitmap.
const fn set_bit(bits: &mut [u64], at: usize) {
    bits[at / 64] |= 1 << (at % 64);
}

/// One bit per character of the common CJK block: a Chinese numeral ([`numeral_value`]).
const CJK_NUMERALS: [u64; 0x5200 / 64] = {
    let mut bits = [0u64; 0x5200 / 64];
    let mut at = 0;
    while at < 0x5200 {
        if let Some(c) = char::from_u32(COMMON_CJK + at as u32)
            && numeral_of(c).is_some()
        {
            set_bit(&mut bits, at);
        }
        at += 1;
    }
    bits
};

/// Whether [`numeral_of`] reads `c` as a digit, answered from a bitmap.
#[inline(always)]
fn is_numeral(c: char) -> bool {
    match c {
        '0'..='9' | '〇' | '○' => true,
        '\u{4E00}'..='\u{9FFF}' => is_cjk_numeral(c as u32),
        _ => false,
    }
}

/// Whether the code point `c`, of the common CJK block, is a Chinese numeral.
#[inline(always)]
fn is_cjk_numeral(c: u32) -> bool {
    has_bit(&CJK_NUMERALS, (c - COMMON_CJK) as usize)
}

/// Stage 1: compatibility mapping, look-alikes, lower case, no marks, no invisibles,
/// simplified Chinese.
pub fn fold(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    fold_into(input, &mut out);
    out
}

/// [`fold`] appending to a buffer the caller reuses. Returns whether a look-alike was mapped
/// (then [`fold_literal`] differs).
pub fn fold_into(input: &str, out: &mut String) -> bool {
    fold_chars(input, true, out)
}

/// Stage 1 without the look-alike mapping: the fold for hosts, where a look-alike letter
/// makes another name.
pub fn fold_literal(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    fold_chars(input, false, &mut out);
    out
}

/// Stage 2: removes separators that split words apart. Expects folded text.
pub fn collapse(folded: &str) -> String {
    let mut out = String::with_capacity(folded.len());
    collapse_into(folded, &mut out);
    out
}

/// [`collapse`] appending to a buffer the caller reuses.
pub fn collapse_into(folded: &str, out: &mut String) {
    collapse_to(folded, out);
}

/// Normalized text with, for every output byte, the input byte range it came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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

/// The input byte range that bytes `span` of its fold came from ([`fold`] with
/// `lookalikes`, else [`fold_literal`]): from where the input character behind the span's
/// first byte starts to where the one behind its last byte ends. Found by folding `input`
/// again and counting, so nothing is kept per character. Empty for an empty span.
pub fn folded_source(input: &str, lookalikes: bool, span: Range<usize>) -> Range<usize> {
    let Some(mut locating) = Locating::of(span) else {
        return 0..0;
    };
    fold_chars(input, lookalikes, &mut locating);
    locating.found().unwrap_or(0..0)
}

/// The input byte range that bytes `span` of [`normalize`]`(input)` came from; `folded` is
/// [`fold`]`(input)`. A separator run written as one canonical character leads back to the
/// whole run.
pub fn collapsed_source(input: &str, folded: &str, span: Range<usize>) -> Range<usize> {
    let Some(locating) = Locating::of(span) else {
        return 0..0;
    };
    let mut pieces = LocatingPieces { folded, locating };
    collapse_pieces(folded, &mut pieces);
    match pieces.locating.found() {
        Some(in_folded) => folded_source(input, true, in_folded),
        None => 0..0,
    }
}

/// Locates a span of collapsed text in the folded text it was collapsed from.
struct LocatingPieces<'a> {
    folded: &'a str,
    locating: Locating,
}

impl PieceSink for LocatingPieces<'_> {
    fn piece(&mut self, piece: Piece) {
        let folded = self.folded;
        match piece {
            Piece::Word(from) | Piece::Separators(from) => self.locating.see(
                from.len(),
                |at| folded.floor_char_boundary(from.start + at),
                |at| char_end(folded, from.start + at),
            ),
            Piece::Canonical(c, from) => {
                self.locating
                    .see(c.len_utf8(), |_| from.start, |_| from.end)
            }
        }
    }

    fn done(&self) -> bool {
        self.locating.found().is_some()
    }
}

/// Where the character holding byte `at` of `text` ends.
fn char_end(text: &str, at: usize) -> usize {
    let start = text.floor_char_boundary(at);
    start + text[start..].chars().next().map_or(0, char::len_utf8)
}

/// Output counted, not written: where the source behind its bytes `first` and `last` is.
struct Locating {
    /// Output bytes so far.
    out: usize,
    first: usize,
    last: usize,
    /// Where the source character behind `first` starts, and the one behind `last` ends.
    start: Option<usize>,
    end: Option<usize>,
}

impl Locating {
    /// Looking for the bytes of a span; none for an empty one.
    fn of(span: Range<usize>) -> Option<Locating> {
        (!span.is_empty()).then(|| Locating {
            out: 0,
            first: span.start,
            last: span.end - 1,
            start: None,
            end: None,
        })
    }

    /// Notes `written` bytes of output; `start_of` and `end_of` give, for an offset in
    /// them, where the source character behind it starts and ends.
    fn see(
        &mut self,
        written: usize,
        start_of: impl FnOnce(usize) -> usize,
        end_of: impl FnOnce(usize) -> usize,
    ) {
        let here = self.out..self.out + written;
        if here.contains(&self.first) {
            self.start = Some(start_of(self.first - self.out));
        }
        if here.contains(&self.last) {
            self.end = Some(end_of(self.last - self.out));
        }
        self.out = here.end;
    }

    fn found(&self) -> Option<Range<usize>> {
        Some(self.start?..self.end?)
    }
}

impl FoldSink for Locating {
    fn char(&mut self, c: char, (start, end): (usize, usize)) {
        self.see(c.len_utf8(), |_| start, |_| end);
    }

    fn done(&self) -> bool {
        self.found().is_some()
    }

    fn run(&mut self, run: &str, start: usize, _: RunNotes) {
        // A run folds to itself byte for byte (ASCII case aside): its offsets are the input's.
        self.see(
            run.len(),
            |at| start + run.floor_char_boundary(at),
            |at| start + char_end(run, at),
        );
    }
}

/// What collapsed text sounds like, for keyword lists that match homophones: each Chinese
/// character becomes its toneless pinyin syllable (the first reading of a character with
/// several), and so does a `v` written next to one (`V信` for `微信`: spammers write V for
/// 微); anything else stays as it is. Each syllable is written as one character of its own (in
/// Unicode's supplementary private use area), so the sound is as long as the text, and
/// `薇信`, `威信` and `v信` all sound alike. The map leads back to the collapsed text.
pub fn sound_mapped(collapsed: &str) -> Mapped {
    let mut sound = Mapped::default();
    sound_into(collapsed, &mut sound);
    sound
}

/// [`sound_mapped`] into a buffer the caller reuses.
pub fn sound_into(collapsed: &str, sound: &mut Mapped) {
    let syllables = syllables();
    let (text, origins) = (&mut sound.text, &mut sound.origins);
    text.clear();
    origins.clear();
    let mut chars = collapsed
        .char_indices()
        .map(|(at, c)| (at, c, syllables.of(c)));
    let mut next = chars.next();
    let mut previous_sounded = false;
    while let Some((at, c, own)) = next {
        next = chars.next();
        let beside = previous_sounded || next.is_some_and(|(_, _, s)| s.is_some());
        let written = match own {
            Some(syllable) => syllable,
            None if c == 'v' && beside => syllables.wei,
            None => c,
        };
        previous_sounded = own.is_some();
        origins.push((text.len() as u32, at as u32, (at + c.len_utf8()) as u32));
        text.push(written);
    }
}

/// Toneless pinyin syllables, one character each, for the CJK characters that have a reading.
struct Syllables {
    /// From the common CJK block's characters to their syllable's character, if any.
    common: Vec<Option<char>>,
    /// The syllable `wei`.
    wei: char,
}

impl Syllables {
    fn of(&self, c: char) -> Option<char> {
        match c {
            '\u{4E00}'..='\u{9FFF}' => self.common[c as usize - 0x4E00],
            _ if is_cjk(c) => syllable_char(c),
            _ => None,
        }
    }
}

/// The syllable of `c` as one character, from the `pinyin` crate's readings.
fn syllable_char(c: char) -> Option<char> {
    use pinyin::ToPinyin;
    static IDS: OnceLock<std::sync::Mutex<FxHashMap<&'static str, u32>>> = OnceLock::new();
    let plain = c.to_pinyin()?.plain();
    let mut ids = IDS.get_or_init(Default::default).lock().ok()?;
    let next = ids.len() as u32;
    let id = *ids.entry(plain).or_insert(next);
    char::from_u32(0xF_0000 + id)
}

fn syllables() -> &'static Syllables {
    static TABLE: OnceLock<Syllables> = OnceLock::new();
    TABLE.get_or_init(|| Syllables {
        common: ('\u{4E00}'..='\u{9FFF}').map(syllable_char).collect(),
        wei: syllable_char('微').unwrap_or('微'),
    })
}

/// Where folded text goes.
trait FoldSink {
    /// One folded character, from the input bytes `span`.
    fn char(&mut self, c: char, span: (usize, usize));

    /// Whether the sink needs no more: folding stops.
    fn done(&self) -> bool {
        false
    }

    /// A stretch of the input, from byte `start`, that folds to itself apart from ASCII
    /// capitals (ASCII, and common CJK characters with no traditional form), with what was
    /// noted in it.
    fn run(&mut self, run: &str, start: usize, notes: RunNotes) {
        let _ = notes;
        for (at, c) in run.char_indices() {
            self.char(
                c.to_ascii_lowercase(),
                (start + at, start + at + c.len_utf8()),
            );
        }
    }

    /// Whether the sink wants the letters and digits of runs as they are read, before each
    /// run is handed over: [`FoldSink::run_letter`] for each. Letters folded one at a time
    /// come to [`FoldSink::char`] only.
    fn wants_run_letters(&self) -> bool {
        false
    }

    /// A letter or digit of a run, by its folded code point.
    fn run_letter(&mut self, c: u32) {
        let _ = c;
    }
}

impl FoldSink for String {
    fn char(&mut self, c: char, _: (usize, usize)) {
        self.push(c);
    }

    fn run(&mut self, run: &str, _: usize, notes: RunNotes) {
        let at = self.len();
        self.push_str(run);
        if notes.capitals {
            self[at..].make_ascii_lowercase();
        }
    }
}

/// Folded text, how many digits and Chinese numerals it has, and its link characters.
struct Noting<'a> {
    out: &'a mut String,
    numerals: usize,
    link_chars: LinkChars,
}

impl FoldSink for Noting<'_> {
    fn char(&mut self, c: char, _: (usize, usize)) {
        self.link_chars |= LinkChars::of_after(c, self.out);
        self.out.push(c);
        self.numerals += usize::from(is_numeral(c));
    }

    fn run(&mut self, run: &str, start: usize, notes: RunNotes) {
        self.out.run(run, start, notes);
        self.numerals += notes.numerals;
        self.link_chars |= notes.link_chars;
    }
}

/// As [`Noting`], and the folded text's letters and digits, read while folding, kept in
/// `skeleton`.
struct NotingLetters<'a> {
    noting: Noting<'a>,
    skeleton: &'a mut Vec<u32>,
}

impl FoldSink for NotingLetters<'_> {
    fn char(&mut self, c: char, span: (usize, usize)) {
        self.noting.char(c, span);
        if in_skeleton(c) {
            self.run_letter(c as u32);
        }
    }

    fn run(&mut self, run: &str, start: usize, notes: RunNotes) {
        self.noting.run(run, start, notes);
    }

    fn wants_run_letters(&self) -> bool {
        true
    }

    #[inline(always)]
    fn run_letter(&mut self, c: u32) {
        self.skeleton.push(c);
    }
}

/// The code point at byte `at` of UTF-8 `bytes` if it is of the common CJK block (U+4E00 to
/// U+9FFF: three bytes, led by 0xE4 to 0xE9), decoded without the general decoder.
#[inline(always)]
fn common_cjk(bytes: &[u8], at: usize) -> Option<u32> {
    let Some(&[lead, second, third]) = bytes.get(at..at + 3) else {
        return None;
    };
    if !(0xE4..=0xE9).contains(&lead) {
        return None;
    }
    let c =
        (u32::from(lead & 0x0F) << 12) | (u32::from(second & 0x3F) << 6) | u32::from(third & 0x3F);
    (c >= COMMON_CJK).then_some(c)
}

/// Folds `input` into `sink`; with `lookalikes`, Cyrillic and Greek look-alikes of Latin
/// letters are mapped where their word qualifies (see the module documentation). Returns
/// whether any was; stops early once the sink is done.
fn fold_chars(input: &str, lookalikes: bool, sink: &mut impl FoldSink) -> bool {
    let t2s = t2s();
    let bytes = input.as_bytes();
    let mut word = LookalikeWord::default();
    // Most text is a stretch that folds to itself (but for ASCII case) with a few characters
    // between: such a stretch is handed over whole.
    let (mut at, mut run_start, mut run_cjk_numerals, mut run_notes) = (0, 0, 0, 0);
    while at < bytes.len() && !sink.done() {
        if !word.active {
            let run = read_run(bytes, at, t2s, sink);
            at += run.len;
            run_cjk_numerals += run.cjk_numerals;
            run_notes |= run.notes;
            if at == bytes.len() {
                break;
            }
        }
        hand_over_run(sink, input, run_start..at, run_cjk_numerals, run_notes);
        let c = input[at..].chars().next().unwrap_or_default();
        let span = (at, at + c.len_utf8());
        at = span.1;
        (run_start, run_cjk_numerals, run_notes) = (at, 0, 0);
        if !word.active {
            // Other common characters, kept cheap while no look-alike word is open.
            let plain = if ('\u{4E00}'..='\u{9FFF}').contains(&c) {
                Some(t2s.simplify(c))
            } else {
                match punctuation_folded(c) {
                    Some(None) => continue,
                    Some(one) => one,
                    None => None,
                }
            };
            if let Some(x) = plain {
                sink.char(x, span);
                continue;
            }
        }
        let sink: &mut dyn FoldSink = sink;
        fold_char(c, t2s, lookalikes, |x, lookalike| {
            if word.active {
                word.next(x, lookalike, span, sink);
            } else if lookalike.is_some() {
                word.open(word_before(input, span.0, t2s));
                word.next(x, lookalike, span, sink);
            } else {
                sink.char(x, span);
            }
        });
    }
    hand_over_run(sink, input, run_start..at, run_cjk_numerals, run_notes);
    word.end(sink);
    word.mapped_any
}

/// What [`read_run`] read.
struct RunRead {
    len: usize,
    cjk_numerals: usize,
    notes: u16,
}

/// Reads on from byte `from` of `bytes` while characters fold to themselves (but for ASCII
/// case): ASCII, and common CJK characters with no traditional form. Hands their letters to
/// the sink as it goes, when it wants them. A loop of its own, not inlined into the fold's,
/// whose registers it would crowd.
#[inline(never)]
fn read_run(bytes: &[u8], from: usize, t2s: &T2s, sink: &mut impl FoldSink) -> RunRead {
    let letters = sink.wants_run_letters();
    let (mut at, mut cjk_numerals, mut notes) = (from, 0, 0);
    while at < bytes.len() {
        let lead = bytes[at];
        if lead < 0x80 {
            let note = ASCII_NOTES[lead as usize];
            notes |= note;
            if letters && note & ASCII_LETTER != 0 {
                sink.run_letter(u32::from(lead.to_ascii_lowercase()));
            }
            at += 1;
            continue;
        }
        let Some(c) = common_cjk(bytes, at) else {
            break;
        };
        // Nearly every character is plain: one bit says so.
        if t2s.notable(c) {
            if t2s.maps(c) {
                break;
            }
            cjk_numerals += usize::from(is_cjk_numeral(c));
            if c == '点' as u32 {
                notes |= u16::from(LinkChars::DIAN.0);
            }
        }
        if letters {
            sink.run_letter(c);
        }
        at += 3;
    }
    RunRead {
        len: at - from,
        cjk_numerals,
        notes,
    }
}

/// Hands the run of `input` at `span`, if any, to `sink` with what was noted in it.
fn hand_over_run(
    sink: &mut impl FoldSink,
    input: &str,
    span: Range<usize>,
    cjk_numerals: usize,
    notes: u16,
) {
    if !span.is_empty() {
        let (start, run) = (span.start, &input[span]);
        sink.run(run, start, RunNotes::of(run, cjk_numerals, notes));
    }
}

/// Characters of the blocks chat punctuation comes from: general punctuation, CJK symbols
/// and punctuation, half- and full-width forms (`，`, `。`, `！`, `Ｗ`).
const PUNCTUATION_BLOCKS: [std::ops::RangeInclusive<char>; 3] = [
    '\u{2000}'..='\u{206F}',
    '\u{3000}'..='\u{303F}',
    '\u{FF00}'..='\u{FFEF}',
];

/// What [`fold_char`] makes of a character of [`PUNCTUATION_BLOCKS`], worked out once:
/// `Some(Some(x))` for one character `x`, `Some(None)` for nothing, `None` otherwise (several
/// characters, or outside those blocks).
#[inline]
fn punctuation_folded(c: char) -> Option<Option<char>> {
    static TABLE: OnceLock<Vec<Option<Option<char>>>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        PUNCTUATION_BLOCKS
            .iter()
            .flat_map(|block| block.clone())
            .map(|c| {
                let mut folded: smallvec::SmallVec<[(char, Option<char>); 4]> =
                    smallvec::SmallVec::new();
                fold_char(c, t2s(), true, |x, lookalike| folded.push((x, lookalike)));
                match folded.as_slice() {
                    [] => Some(None),
                    [(x, None)] => Some(Some(*x)),
                    _ => None,
                }
            })
            .collect()
    });
    let mut offset = 0;
    for block in &PUNCTUATION_BLOCKS {
        if block.contains(&c) {
            return table[offset + (c as usize - *block.start() as usize)];
        }
        offset += *block.end() as usize - *block.start() as usize + 1;
    }
    None
}

/// Folds one character: calls `out(folded, latin_lookalike)` for each character it becomes.
fn fold_char(c: char, t2s: &T2s, lookalikes: bool, mut out: impl FnMut(char, Option<char>)) {
    if c.is_ascii() {
        out(c.to_ascii_lowercase(), None);
    } else if ('\u{4E00}'..='\u{9FFF}').contains(&c) {
        // The common CJK block has no compatibility forms and no case.
        out(t2s.simplify(c), None);
    } else if is_invisible(c) {
    } else if let Some(plain) = enclosed_without_decomposition(c) {
        plain.chars().for_each(|x| out(x, None));
    } else if ('\u{AC00}'..='\u{D7A3}').contains(&c) {
        // Hangul syllables stay whole rather than decomposing into jamo.
        out(c, None);
    } else {
        decompose_compatible(c, |d| {
            let lookalike = if lookalikes { latin_lookalike(d) } else { None };
            for lower in d.to_lowercase() {
                decompose_compatible(lower, |x| {
                    if !is_combining_mark(x) && !is_invisible(x) {
                        out(t2s.simplify(x), lookalike);
                    }
                });
            }
        });
    }
}

/// What the letters of a word so far say about mapping its look-alikes.
#[derive(Debug, Default, Clone, Copy)]
struct WordSoFar {
    /// A Latin letter: the word's look-alikes are mapped.
    latin: bool,
    /// A letter that looks like no Latin one: unless a Latin letter comes, nothing is mapped.
    unlike: bool,
}

impl WordSoFar {
    /// Notes a folded character that has no look-alike.
    fn note(&mut self, c: char) {
        if !is_word_char(c) {
            *self = WordSoFar::default();
        } else if c.is_ascii_alphabetic() {
            self.latin = true;
        } else if c.is_alphabetic() {
            self.unlike = true;
        }
    }
}

/// The part of the word that ends at byte `end` of `input`, folded, as [`WordSoFar`] sees it.
/// Read backwards only when a look-alike appears, so ordinary text pays nothing for it.
fn word_before(input: &str, end: usize, t2s: &T2s) -> WordSoFar {
    let mut so_far = WordSoFar::default();
    for c in input[..end].chars().rev() {
        let mut folded: smallvec::SmallVec<[char; 4]> = smallvec::SmallVec::new();
        fold_char(c, t2s, false, |x, _| folded.push(x));
        for &x in folded.iter().rev() {
            if !is_word_char(x) {
                return so_far;
            }
            so_far.note(x);
        }
    }
    so_far
}

/// A word with a look-alike in it, held back while it is unclear whether its look-alikes are
/// mapped: from its first look-alike until a Latin letter (map) or its end (map if every
/// letter has a Latin look-alike).
#[derive(Default)]
struct LookalikeWord {
    active: bool,
    so_far: WordSoFar,
    pending: Vec<(char, Option<char>, (usize, usize))>,
    mapped_any: bool,
}

impl LookalikeWord {
    fn open(&mut self, so_far: WordSoFar) {
        self.active = true;
        self.so_far = so_far;
    }

    fn next(
        &mut self,
        c: char,
        lookalike: Option<char>,
        span: (usize, usize),
        emit: &mut dyn FoldSink,
    ) {
        if !is_word_char(c) {
            self.end(emit);
            emit.char(c, span);
            return;
        }
        if c.is_ascii_alphabetic() {
            if !self.so_far.latin {
                self.so_far.latin = true;
                self.flush(true, emit);
            }
        } else if lookalike.is_none() && c.is_alphabetic() {
            self.so_far.unlike = true;
        }
        match lookalike {
            Some(latin) if self.so_far.latin => {
                self.mapped_any = true;
                emit.char(latin, span);
            }
            _ if !self.pending.is_empty() || lookalike.is_some() => {
                self.pending.push((c, lookalike, span));
            }
            _ => emit.char(c, span),
        }
    }

    fn end(&mut self, emit: &mut dyn FoldSink) {
        if self.active {
            self.flush(!self.so_far.unlike, emit);
            self.active = false;
        }
    }

    fn flush(&mut self, map: bool, emit: &mut dyn FoldSink) {
        for (c, lookalike, span) in self.pending.drain(..) {
            match lookalike {
                Some(latin) if map => {
                    self.mapped_any = true;
                    emit.char(latin, span);
                }
                _ => emit.char(c, span),
            }
        }
    }
}

/// The lower-case Latin letter a Cyrillic or Greek letter looks like, from the Unicode
/// confusables data: the ASCII letter of the same case with the same skeleton (`Ι` looks
/// like `I`, `ν` like `v`), marks aside (`ό` looks like `o`). A capital without one takes its
/// small letter's, so folding twice maps the same letters.
fn latin_lookalike(c: char) -> Option<char> {
    if !matches!(c, '\u{0370}'..='\u{052F}' | '\u{1F00}'..='\u{1FFF}') {
        return None;
    }
    static TABLE: OnceLock<FxHashMap<char, char>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let skeleton = |c: char| -> String {
            let mut buf = [0u8; 4];
            unicode_security::confusable_detection::skeleton(c.encode_utf8(&mut buf))
                .filter(|x| !is_combining_mark(*x))
                .collect()
        };
        let latin: Vec<(char, String)> = ('A'..='Z')
            .chain('a'..='z')
            .map(|l| (l, skeleton(l)))
            .collect();
        let same_case = |c: char| {
            let shape = skeleton(c);
            let mut candidates = latin.iter().filter(|(_, s)| *s == shape).map(|(l, _)| *l);
            let first = candidates.clone().next()?;
            let matching = candidates.find(|l| l.is_ascii_uppercase() == c.is_uppercase());
            Some(matching.unwrap_or(first).to_ascii_lowercase())
        };
        ('\u{0370}'..='\u{052F}')
            .chain('\u{1F00}'..='\u{1FFF}')
            .filter(|c| c.is_alphabetic())
            .filter_map(|c| {
                let small = c.to_lowercase().next().unwrap_or(c);
                same_case(c).or_else(|| same_case(small)).map(|l| (c, l))
            })
            .collect()
    });
    table.get(&c).copied()
}

/// Characters that render as nothing: zero-width spaces and joiners, bidi controls, variation
/// selectors, fillers, tags (Unicode Default_Ignorable_Code_Point plus the braille blank).
/// Enclosed letters and digits that Unicode gives no compatibility mapping (negative circled
/// and squared letters, regional indicator letters, dingbat and negative circled numbers):
/// the letters or digits they show. `Ⓐ`, `①`, `🄰` and mathematical letters such as `𝐀`
/// have a mapping and need no table.
fn enclosed_without_decomposition(c: char) -> Option<&'static str> {
    const LETTERS: [&str; 26] = [
        "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "q", "r",
        "s", "t", "u", "v", "w", "x", "y", "z",
    ];
    const NUMBERS: [&str; 21] = [
        "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
        "17", "18", "19", "20",
    ];
    let from = |first: char| (c as u32 - first as u32) as usize;
    Some(match c {
        // Negative circled, negative squared and regional indicator letters.
        '\u{1F150}'..='\u{1F169}' => LETTERS[from('\u{1F150}')],
        '\u{1F170}'..='\u{1F189}' => LETTERS[from('\u{1F170}')],
        '\u{1F1E6}'..='\u{1F1FF}' => LETTERS[from('\u{1F1E6}')],
        // Dingbat circled numbers, plain, sans-serif and negative sans-serif: 1 to 10.
        '\u{2776}'..='\u{277F}' => NUMBERS[1 + from('\u{2776}')],
        '\u{2780}'..='\u{2789}' => NUMBERS[1 + from('\u{2780}')],
        '\u{278A}'..='\u{2793}' => NUMBERS[1 + from('\u{278A}')],
        // Negative circled 11 to 20, double circled 1 to 10, negative circled 0.
        '\u{24EB}'..='\u{24F4}' => NUMBERS[11 + from('\u{24EB}')],
        '\u{24F5}'..='\u{24FE}' => NUMBERS[1 + from('\u{24F5}')],
        '\u{24FF}' | '\u{1F10B}' | '\u{1F10C}' => "0",
        _ => return None,
    })
}

fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}'..='\u{1160}' | '\u{17B4}'..='\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{2800}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}'
        | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF0}'..='\u{FFF8}' | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}')
}

/// Han ideographs and kana: scripts written without spaces between words. The kana block's
/// punctuation (`゠`, the middle dot `・`) is not.
#[inline]
pub fn is_cjk(c: char) -> bool {
    // The common block first: nearly every CJK character in chat is there.
    if ('\u{4E00}'..='\u{9FFF}').contains(&c) {
        return true;
    }
    c >= '\u{3040}'
        && matches!(c,
            '\u{3040}'..='\u{309F}' | '\u{30A1}'..='\u{30FA}' | '\u{30FC}'..='\u{30FF}'
            | '\u{3400}'..='\u{4DBF}' | '\u{F900}'..='\u{FAFF}' | '\u{20000}'..='\u{3134F}')
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

/// Separators that end a clause; collapsed only between single characters.
pub fn is_sentence_break(c: char) -> bool {
    matches!(
        c,
        ',' | '!' | '?' | ';' | ':' | '\n' | '\r' | '\u{2028}' | '\u{2029}' | '。' | '、'
    )
}

/// What survives separator collapse, in order.
enum Piece {
    /// Letters and digits, as written (a byte range of the text).
    Word(Range<usize>),
    /// Separators before the first word or after the last, as written.
    Separators(Range<usize>),
    /// A separator run between two words, in its canonical form, and the run as written.
    Canonical(char, Range<usize>),
}

/// What separator collapse needs to know of a character.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    /// A letter or digit of a script written with spaces between words.
    Word,
    /// A CJK character.
    Cjk,
    /// A separator.
    Separator,
    /// A separator that ends a clause.
    SentenceBreak,
}

impl Class {
    fn of(c: char) -> Class {
        if c.is_ascii() {
            return ASCII_CLASSES[c as usize];
        }
        if is_cjk(c) {
            return Class::Cjk;
        }
        if is_sentence_break(c) {
            return Class::SentenceBreak;
        }
        // Punctuation and emoji common in chat, where no letter or digit is, spared the
        // Unicode property lookups below.
        if matches!(c,
            '\u{2000}'..='\u{2027}' | '\u{202A}'..='\u{206F}' | '\u{3000}'
            | '\u{3003}'..='\u{3004}' | '\u{3008}'..='\u{3020}' | '\u{1F300}'..='\u{1FAFF}')
        {
            return Class::Separator;
        }
        if c.is_alphanumeric() {
            Class::Word
        } else {
            Class::Separator
        }
    }

    fn is_separator(self) -> bool {
        matches!(self, Class::Separator | Class::SentenceBreak)
    }
}

const ASCII_CLASSES: [Class; 128] = {
    let mut classes = [Class::Separator; 128];
    let mut b = 0;
    while b < 128 {
        let c = b as u8 as char;
        classes[b] = if c.is_ascii_alphanumeric() {
            Class::Word
        } else if matches!(c, ',' | '!' | '?' | ';' | ':' | '\n' | '\r') {
            Class::SentenceBreak
        } else {
            Class::Separator
        };
        b += 1;
    }
    classes
};

/// The class and UTF-8 length of the character at byte `at` of `text`.
#[inline(always)]
fn class_at(text: &str, at: usize) -> (Class, usize) {
    let bytes = text.as_bytes();
    let lead = bytes[at];
    if lead < 0x80 {
        return (ASCII_CLASSES[lead as usize], 1);
    }
    if common_cjk(bytes, at).is_some() {
        return (Class::Cjk, 3);
    }
    let c = text[at..].chars().next().unwrap_or_default();
    (Class::of(c), c.len_utf8())
}

/// Separator collapse (see the module documentation) as a sequence of pieces, until the sink
/// is done. Returns how many letters and digits the text has (up to there).
fn collapse_pieces(text: &str, out: &mut impl PieceSink) -> usize {
    let len = text.len();
    let mut letters = 0;
    // The length (capped at 2) of the last word's last run of one script, and whether it is CJK.
    let mut left: Option<(u8, bool)> = None;
    let mut at = 0;
    while at < len && !out.done() {
        let (mut class, mut width) = class_at(text, at);
        let start = at;
        if class.is_separator() {
            let mut has_break = false;
            loop {
                has_break |= class == Class::SentenceBreak;
                at += width;
                if at == len {
                    break;
                }
                (class, width) = class_at(text, at);
                if !class.is_separator() {
                    break;
                }
            }
            let Some((left_len, left_cjk)) = left.filter(|_| at < len) else {
                out.piece(Piece::Separators(start..at));
                continue;
            };
            // A word that starts with a single letter: the next character is not of its script.
            let right_cjk = class == Class::Cjk;
            let right_single = at + width == len || {
                let (next, _) = class_at(text, at + width);
                next.is_separator() || (next == Class::Cjk) != right_cjk
            };
            let both_single = left_len == 1 && right_single;
            let joins_word = (left_cjk || left_len == 1) && (right_cjk || right_single);
            if !(both_single || (joins_word && !has_break)) {
                out.piece(Piece::Canonical(
                    if has_break { ',' } else { ' ' },
                    start..at,
                ));
            }
            continue;
        }
        let mut run = (0u8, class == Class::Cjk);
        loop {
            let cjk = class == Class::Cjk;
            run = if run.1 == cjk {
                (run.0.saturating_add(1).min(2), cjk)
            } else {
                (1, cjk)
            };
            letters += 1;
            at += width;
            if at == len {
                break;
            }
            (class, width) = class_at(text, at);
            if class.is_separator() {
                break;
            }
        }
        out.piece(Piece::Word(start..at));
        left = Some(run);
    }
    letters
}

/// Traditional → simplified, one character at a time, from OpenCC's character table.
struct T2s {
    /// One bit per BMP code point that has a mapping, so most lookups never hash.
    bmp_has_mapping: Box<[u64]>,
    /// One bit per BMP code point, set for the characters of the common CJK block that
    /// folding must look at: one with a mapping, a numeral, or `点`. Indexed by the code
    /// point itself, below 2^16 by how it was decoded: no subtraction and no bounds check.
    cjk_notable: Box<[u64; 0x10000 / 64]>,
    map: FxHashMap<char, char>,
}

impl T2s {
    #[inline]
    fn simplify(&self, c: char) -> char {
        if (c as u32) < 0x10000 && !self.maps(c as u32) {
            return c;
        }
        self.map.get(&c).copied().unwrap_or(c)
    }

    /// Whether the code point `c`, of the common CJK block, is in `cjk_notable`.
    #[inline(always)]
    fn notable(&self, c: u32) -> bool {
        has_bit(&self.cjk_notable[..], c as usize)
    }

    /// Whether the code point `c`, of the BMP, has a simplified form.
    #[inline(always)]
    fn maps(&self, c: u32) -> bool {
        has_bit(&self.bmp_has_mapping, c as usize)
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
            if (c as u32) < 0x10000 {
                set_bit(&mut bmp_has_mapping, c as usize);
            }
        }
        let mut cjk_notable = Box::new([0u64; 0x10000 / 64]);
        for c in COMMON_CJK..=0x9FFF {
            if c == '点' as u32 || is_cjk_numeral(c) || has_bit(&bmp_has_mapping, c as usize) {
                set_bit(&mut cjk_notable[..], c as usize);
            }
        }
        T2s {
            bmp_has_mapping,
            cjk_notable,
            map,
        }
    })
}

#[cfg(test)]
mod tests;
