//! A gate before the keyword automata: whether a text's letters may hold a keyword, told
//! from a few letters in a row at a time.
//!
//! Stepping an automaton costs a text one or two probes of a large table per letter (most
//! letters leave the state they reach through a failure link). The gate instead looks up the
//! run of letters each letter ends in a small Bloom filter: the last three letters when any
//! of them is wider than ASCII (three CJK characters rarely begin a keyword by chance), the
//! last five when those three are ASCII (a few Latin letters often do). Every keyword long
//! enough holds such a run, so a text none of whose runs is in the filter holds none of
//! them; only a text with some run in it is searched by the automata. A shorter keyword
//! (one or two letters, three or four ASCII ones) is looked up whole, at every letter,
//! among the keywords of its length.

use crate::bloom::KeyFilter;

/// Multiplier of the runs' hashes (the 64-bit golden ratio).
const MIX: u64 = 0x9E37_79B9_7F4A_7C15;
/// Filter bits per run: two bits of one word set per run, about one run in three words.
const BITS_PER_RUN: usize = 3 * 64;

/// The runs of letters keywords hold, in a Bloom filter.
#[derive(Debug, Clone)]
pub(crate) struct LetterGate {
    runs: KeyFilter<2>,
    /// Bit `n` set when some keyword of `n` letters is too short for a run.
    short_lengths: u8,
}

impl LetterGate {
    /// The gate of `patterns`, each read as a sequence of letters and digits.
    pub(crate) fn of<'a>(patterns: impl Iterator<Item = &'a str> + Clone) -> LetterGate {
        let mut gate = LetterGate {
            runs: KeyFilter::sized_for(patterns.clone().count(), BITS_PER_RUN),
            short_lengths: 0,
        };
        for pattern in patterns {
            let mut runs = Runs::default();
            let letters = pattern.chars().count();
            let first_run = pattern.chars().enumerate().find_map(|(at, c)| {
                runs.push(u32::from(c));
                (at + 1 >= runs.span()).then(|| runs.hash())
            });
            match first_run {
                Some(hash) => gate.runs.add(hash),
                None if letters > 0 => {
                    gate.short_lengths |= 1 << letters;
                    gate.runs.add(runs.short_hash(letters));
                }
                None => {}
            }
        }
        gate
    }

    /// Where a text of these letters and digits may hold a keyword: the first letter at which
    /// some run of them is in the filter, or some last letters are a shorter keyword; `None`
    /// when it holds none. Every keyword in the text starts at most [`RUN_REACH`] letters
    /// before it (its first run ends by its fifth letter), so a search may start there. A
    /// loop of its own over the letters, after the fold has kept them, holds its state in
    /// registers (not inlined into the engine's evaluation, where it would not find enough
    /// of them).
    #[inline(never)]
    pub(crate) fn first_through(&self, letters: &[u32]) -> Option<usize> {
        let mut runs = Runs::default();
        let mut rest = letters.iter();
        // `any`, and the position from what is left: no count kept in the loop.
        rest.any(|&c| {
            runs.push(c);
            self.runs.may_hold(runs.hash())
                || (self.short_lengths != 0
                    && (1..=MAX_SHORT).any(|n| {
                        self.short_lengths & 1 << n != 0 && self.runs.may_hold(runs.short_hash(n))
                    }))
        })
        .then(|| letters.len() - rest.as_slice().len() - 1)
    }

    /// Heap bytes of its filter.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.runs.heap_bytes()
    }
}

/// The longest keyword that may be too short for a run: four ASCII letters.
const MAX_SHORT: usize = 4;

/// How many letters before the first one let through a keyword may start: a run spans at
/// most five letters and is a keyword's first when it ends by the keyword's fifth letter; a
/// keyword too short for a run has at most four.
pub(crate) const RUN_REACH: usize = 4;

/// Bits a letter in [`Runs`].
const LANE: u32 = 12;

/// The last five letters read, 12 bits each, in one register that shifts them along. A
/// letter is read as its low 12 bits, so a CJK one may read as another (or as ASCII): that
/// may let a text through by chance but never turns a keyword away, since a keyword's
/// letters are read the same way.
#[derive(Default, Clone, Copy)]
struct Runs {
    lanes: u64,
}

/// The bits beyond ASCII of the last three letters.
const WIDE_IN_LAST_THREE: u64 = 0xF80_F80_F80;

impl Runs {
    #[inline(always)]
    fn push(&mut self, c: u32) {
        self.lanes = self.lanes << LANE | u64::from(c & 0xFFF);
    }

    /// How many letters the run ending at the last one spans.
    #[inline(always)]
    fn span(&self) -> usize {
        if self.lanes & WIDE_IN_LAST_THREE != 0 {
            3
        } else {
            5
        }
    }

    /// The hash of the run ending at the last letter. The run's letters shifted to the top
    /// (the older ones out) and multiplied by the golden ratio are its letters multiplied by
    /// the golden ratio shifted: one multiply, by one of two numbers, hashes either run.
    #[inline(always)]
    fn hash(&self) -> u64 {
        let multiplier = match self.span() {
            3 => MIX << (64 - 3 * LANE),
            _ => MIX << (64 - 5 * LANE),
        };
        fold(self.lanes.wrapping_mul(multiplier))
    }

    /// The hash of the last `n` letters as a keyword too short for a run (`n` ≤ 4), with `n`
    /// in the top bits. The letters stay in the low bits, unlike a run's: shifted to the top,
    /// one or two letters would leave the bits below it, which pick the filter's bits, alike.
    #[inline(always)]
    fn short_hash(&self, n: usize) -> u64 {
        let letters = self.lanes & ((1 << (LANE as usize * n)) - 1);
        fold((letters | (n as u64) << 60).wrapping_mul(MIX))
    }
}

/// A product's top bits pick the filter's word; the twelve below them, folded onto the low
/// ones, pick the bits in it. (A run's product has its low bits clear, and the low bits of
/// a product depend on few of the letters: the bits next to the top are the best mixed.)
#[inline(always)]
fn fold(product: u64) -> u64 {
    product ^ product >> 37
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::normalize::in_skeleton;

    /// Letters of every width the runs read differently: ASCII, CJK, beyond 16 bits, and
    /// ones that share their low 12 bits with others (`\u{5061}` reads as `a`).
    const LETTERS: &[char] = &[
        'a',
        'b',
        'x',
        '7',
        '微',
        '信',
        '加',
        '\u{20001}',
        '\u{6061}',
        '\u{161}',
        '\u{5061}',
        '\u{7E2D}',
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]
        #[test]
        fn a_text_holding_a_keyword_always_gets_through(
            keywords in prop::collection::vec(prop::collection::vec(0..LETTERS.len(), 1..8), 1..20),
            which in any::<prop::sample::Index>(),
            before in prop::collection::vec(0..LETTERS.len(), 0..6),
            after in prop::collection::vec(0..LETTERS.len(), 0..6),
        ) {
            let spell = |letters: &[usize]| letters.iter().map(|&l| LETTERS[l]).collect::<String>();
            let keywords: Vec<String> = keywords.iter().map(|k| spell(k)).collect();
            let gate = LetterGate::of(keywords.iter().map(String::as_str));
            let keyword = which.get(&keywords);
            let text = format!("{}{keyword}{}", spell(&before), spell(&after));
            let first = first_through(&gate, &text);
            prop_assert!(first.is_some(), "{keyword:?} in {text:?}");
            // A search from RUN_REACH letters before it finds the keyword.
            prop_assert!(first.unwrap() <= before.len() + RUN_REACH, "{keyword:?} in {text:?}");
        }

        #[test]
        fn a_text_lets_through_where_its_first_keyword_ends_a_run_or_later(
            keywords in prop::collection::vec(prop::collection::vec(0..LETTERS.len(), 1..8), 1..20),
            text in prop::collection::vec(0..LETTERS.len(), 0..30),
        ) {
            let spell = |letters: &[usize]| letters.iter().map(|&l| LETTERS[l]).collect::<String>();
            let keywords: Vec<String> = keywords.iter().map(|k| spell(k)).collect();
            let gate = LetterGate::of(keywords.iter().map(String::as_str));
            let text = spell(&text);
            // The earliest keyword anywhere in the text starts within reach of the first
            // letter let through.
            let earliest = keywords
                .iter()
                .filter_map(|k| text.find(k.as_str()).map(|at| text[..at].chars().count()))
                .min();
            if let Some(start) = earliest {
                let first = first_through(&gate, &text);
                prop_assert!(first.is_some_and(|at| at <= start + RUN_REACH), "{text:?}");
            }
        }
    }

    fn first_through(gate: &LetterGate, text: &str) -> Option<usize> {
        let letters: Vec<u32> = text
            .chars()
            .filter(|&c| in_skeleton(c))
            .map(u32::from)
            .collect();
        gate.first_through(&letters)
    }

    fn through(gate: &LetterGate, text: &str) -> bool {
        first_through(gate, text).is_some()
    }

    #[test]
    fn a_keyword_gets_through_anywhere_and_other_text_does_not() {
        let gate = LetterGate::of(["加微信", "freegift", "qq", "v信", "sex"].into_iter());
        for text in [
            "加微信",
            "快来加微信吧",
            "get free gift now",
            "myqq",
            "加v信",
            "sexy",
        ] {
            assert!(through(&gate, text), "{text}");
        }
        for text in [
            "",
            "加微",
            "微信",
            "今天天气很好",
            "fregift",
            "hello world",
            "q",
            "se",
            "sax",
        ] {
            assert!(!through(&gate, text), "{text}");
        }
        // A keyword's first run is enough.
        assert!(through(&gate, "freegone"));
    }

    #[test]
    fn runs_span_three_letters_with_a_wide_one_and_five_ascii_letters() {
        let mut runs = Runs::default();
        let spans: Vec<usize> = "ab微cdefg"
            .chars()
            .map(|c| {
                runs.push(c as u32);
                runs.span()
            })
            .collect();
        assert_eq!(spans, [5, 5, 3, 3, 3, 5, 5, 5]);
        // A run is its letters alone.
        let hash = |text: &str| {
            let mut runs = Runs::default();
            text.chars().for_each(|c| runs.push(c as u32));
            runs.hash()
        };
        assert_eq!(hash("abcde"), hash("微微abcde"));
        assert_eq!(hash("xabcde"), hash("yabcde"), "five letters, not six");
        assert_eq!(hash("x微ab"), hash("y微ab"), "three letters, not four");
        assert_ne!(hash("微ab"), hash("加ab"));
    }
}
