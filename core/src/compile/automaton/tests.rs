use proptest::prelude::*;

use super::*;

fn matches(patterns: &[&str], text: &str) -> Vec<(usize, usize, u32)> {
    let automaton = CharAutomaton::build(patterns.iter().copied().zip(0..)).unwrap();
    let mut found = Vec::new();
    automaton.find_overlapping(text, |start, end, value| found.push((start, end, value)));
    found
}

#[test]
fn finds_overlapping_occurrences_longest_first_at_each_end() {
    assert_eq!(
        matches(&["he", "she", "his", "hers"], "ushers"),
        [(1, 4, 1), (2, 4, 0), (2, 6, 3)]
    );
}

#[test]
fn finds_chinese_keywords_by_byte_offsets() {
    let text = "请加微信号，加微信";
    let found = matches(&["微信", "加微信", "信号"], text);
    let spans: Vec<&str> = found.iter().map(|&(s, e, _)| &text[s..e]).collect();
    assert_eq!(spans, ["加微信", "微信", "信号", "加微信", "微信"]);
}

#[test]
fn a_character_no_pattern_holds_starts_the_search_over() {
    assert_eq!(matches(&["abc"], "abxabc ab c"), [(3, 6, 0)]);
    assert!(matches(&["abc"], "a😀bc").is_empty());
    assert_eq!(matches(&["😀", "a😀"], "xa😀"), [(1, 6, 1), (2, 6, 0)]);
}

#[test]
fn a_pattern_given_twice_is_reported_under_each_value() {
    assert_eq!(matches(&["spam", "spam"], "spam"), [(0, 4, 0), (0, 4, 1)]);
}

#[test]
fn an_empty_pattern_is_refused() {
    assert_eq!(
        CharAutomaton::build([("ok", 0), ("", 1)]).err(),
        Some(AutomatonError::EmptyPattern)
    );
}

#[test]
fn no_patterns_find_nothing() {
    assert!(matches(&[], "anything").is_empty());
}

#[test]
fn more_distinct_characters_than_codes_are_refused() {
    let text: String = (0x4E00u32..)
        .filter_map(char::from_u32)
        .take(70_000)
        .collect();
    assert_eq!(
        CharAutomaton::build([(text.as_str(), 0)]).err(),
        Some(AutomatonError::TooManyCharacters)
    );
}

/// Text over a few characters, so patterns occur and overlap often.
fn small_text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec!['a', 'b', 'c', '微', '信', '加', '😀', 'é']),
        0..max,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

proptest! {
    /// The same matches, in the same order, as the `daachorse` crate's automaton.
    #[test]
    fn agrees_with_daachorse(
        patterns in prop::collection::hash_set(small_text(5).prop_filter("empty", |p| !p.is_empty()), 1..30),
        text in small_text(60),
    ) {
        let patterns: Vec<&str> = patterns.iter().map(String::as_str).collect();
        let oracle: daachorse::CharwiseDoubleArrayAhoCorasick<u32> =
            daachorse::CharwiseDoubleArrayAhoCorasick::with_values(patterns.iter().copied().zip(0..)).unwrap();
        let expected: Vec<(usize, usize, u32)> = oracle
            .find_overlapping_iter(&text)
            .map(|m| (m.start(), m.end(), m.value()))
            .collect();
        prop_assert_eq!(matches(&patterns, &text), expected);
    }
}

/// Chinese keywords of three or four characters and English ones, as operators write them,
/// and chat text of the same characters with some of them planted in it.
fn chinese_and_english(keywords: usize, texts: usize) -> (Vec<String>, Vec<String>) {
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move |below: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % below
    };
    let cjk = |n: u64| char::from_u32(0x4E00 + n as u32).unwrap();
    let mut patterns: Vec<String> = (0..keywords)
        .map(|_| match next(5) {
            0 => (0..5 + next(6))
                .map(|_| (b'a' + next(26) as u8) as char)
                .collect(),
            _ => (0..3 + next(2)).map(|_| cjk(next(3500))).collect(),
        })
        .collect();
    patterns.sort_unstable();
    patterns.dedup();
    let texts = (0..texts)
        .map(|_| {
            let mut text: String = (0..30)
                .map(|_| match next(10) {
                    0..=6 => cjk(next(4000)),
                    7 => ' ',
                    _ => (b'a' + next(26) as u8) as char,
                })
                .collect();
            text.push_str(&patterns[next(patterns.len() as u64) as usize]);
            text
        })
        .collect();
    (patterns, texts)
}

#[test]
fn a_large_keyword_list_is_packed_densely_and_found_as_daachorse_finds_it() {
    let (patterns, texts) = chinese_and_english(20_000, 2_000);
    let automaton = CharAutomaton::build(patterns.iter().map(String::as_str).zip(0..)).unwrap();
    let nodes = 1 + patterns
        .iter()
        .flat_map(|p| p.char_indices().map(|(at, c)| &p[..at + c.len_utf8()]))
        .collect::<std::collections::HashSet<_>>()
        .len();
    // Slots no state holds: at most a tenth as many as states.
    assert!(
        automaton.states.len() <= nodes + nodes / 10,
        "{} slots for {nodes} states",
        automaton.states.len()
    );
    let oracle: daachorse::CharwiseDoubleArrayAhoCorasick<u32> =
        daachorse::CharwiseDoubleArrayAhoCorasick::with_values(
            patterns.iter().map(String::as_str).zip(0..),
        )
        .unwrap();
    for text in &texts {
        let mut found = Vec::new();
        automaton.find_overlapping(text, |start, end, value| found.push((start, end, value)));
        let expected: Vec<(usize, usize, u32)> = oracle
            .find_overlapping_iter(text)
            .map(|m| (m.start(), m.end(), m.value()))
            .collect();
        assert!(!found.is_empty());
        assert_eq!(found, expected, "in {text}");
    }
}
