use proptest::prelude::*;

use super::*;

#[test]
fn full_width_and_compatibility_forms_fold_to_ascii() {
    assert_eq!(fold("ＷｅＣｈａｔ　ＶＸ：１２３"), "wechat vx:123");
    assert_eq!(fold("①②③ ㎏ ﬁ"), "123 kg fi");
    // Enclosed and mathematical letters, with a mapping or from the table.
    for written in ["Ⓦⓔ𝐜𝓱𝕒𝘁", "🅆🄴🄲🄷🄰🅃", "🅦🅔🅒🅗🅐🅣", "🆆🅴🅲🅷🅰🆃", "🇼🇪🇨🇭🇦🇹", "𝔀𝓮𝓬𝓱𝓪𝓽"]
    {
        assert_eq!(fold(written), "wechat", "{written}");
    }
    assert_eq!(fold("❶⓶➂➍ ⓫⓴ ⓿"), "1234 1120 0");
}

#[test]
fn case_is_folded() {
    assert_eq!(fold("WeChat TELEGRAM"), "wechat telegram");
    assert_eq!(fold("ΣΊΣΥΦΟΣ"), "σισυφοσ");
}

#[test]
fn diacritics_and_stacked_marks_are_dropped() {
    assert_eq!(fold("wéchàt"), "wechat");
    assert_eq!(fold("s\u{337}p\u{337}a\u{337}m\u{337}"), "spam");
    assert_eq!(fold("cafe\u{301}"), fold("café"));
}

#[test]
fn zero_width_and_invisible_characters_are_removed() {
    assert_eq!(fold("微\u{200B}信"), "微信");
    assert_eq!(fold("we\u{2060}ch\u{FEFF}at\u{00AD}"), "wechat");
    assert_eq!(fold("t\u{E0041}.me"), "t.me");
}

#[test]
fn traditional_chinese_becomes_simplified() {
    assert_eq!(fold("加微信號"), "加微信号");
    assert_eq!(fold("賺錢投資"), "赚钱投资");
    assert_eq!(fold("臺灣"), "台湾");
}

#[test]
fn separators_inside_cjk_words_collapse() {
    assert_eq!(normalize("加 微 信"), "加微信");
    assert_eq!(normalize("微.信"), "微信");
    assert_eq!(normalize("微★信"), "微信");
    assert_eq!(normalize("微-_-信"), "微信");
}

#[test]
fn separators_between_single_letters_collapse() {
    assert_eq!(normalize("w-e-c-h-a-t"), "wechat");
    assert_eq!(normalize("W E C H A T"), "wechat");
    assert_eq!(normalize("加 v x"), "加vx");
    assert_eq!(normalize("加v x"), "加vx");
    assert_eq!(normalize("请联系w e c h a t号"), "请联系wechat号");
    assert_eq!(normalize("q.q: 1 2 3"), "qq123");
    assert_eq!(normalize("qq: 12 34"), "qq,12 34");
}

#[test]
fn ordinary_spacing_and_sentence_breaks_survive() {
    assert_eq!(normalize("hello world"), "hello world");
    assert_eq!(normalize("我爱 rust"), "我爱 rust");
    assert_eq!(normalize("我喜欢微，信任你"), "我喜欢微,信任你");
    assert_eq!(normalize("好的。谢谢"), "好的,谢谢");
}

#[test]
fn latin_look_alikes_inside_latin_words_become_latin() {
    assert_eq!(fold("саsinо night"), "casino night");
    assert_eq!(fold("ΝΙΚΕ"), "nike", "mapped before case folding");
    assert_eq!(fold("саѕіnо"), "casino", "every letter looks Latin");
    assert_eq!(
        fold("ИКЕА"),
        "икеа",
        "a word with a letter of its own stays"
    );
    assert_eq!(fold("привет мир"), "привет мир");
    assert_eq!(fold("καλημέρα"), "καλημερα");
    assert_eq!(
        fold_literal("саsinо"),
        "саsinо",
        "hosts keep every letter as written"
    );
    let mut out = String::new();
    assert!(fold_into("cаsino", &mut out));
    assert!(!fold_into("casino 加微信", &mut out));
}

#[test]
fn more_separators_between_single_characters() {
    for s in [
        "加，微，信",
        "加、微、信",
        "加·微·信",
        "加・微・信",
        "加･微･信",
        "加/微/信",
        "加~微~信",
        "加🍀微🍀信",
        "加★微★信",
    ] {
        assert_eq!(normalize(s), "加微信", "{s}");
    }
    assert_eq!(normalize("w/e/c/h/a/t"), "wechat");
}

#[test]
fn separators_between_words_stay_in_one_canonical_form() {
    assert_eq!(normalize("free gift"), "free gift");
    assert_eq!(normalize("free-gift"), "free gift");
    assert_eq!(normalize("FREE . GIFT"), "free gift");
    assert_eq!(normalize("free / gift"), "free gift");
    assert_eq!(normalize("free, gift"), "free,gift");
    assert_eq!(normalize("we chat daily"), "we chat daily");
    assert_eq!(normalize("替代，购买"), "替代,购买");
    assert_eq!(normalize("f r e e gift"), "free gift");
}

#[test]
fn evasions_combined() {
    assert_eq!(normalize("加 Ｖ\u{200B}·信"), "加v信");
    assert_eq!(normalize("微\u{200D} 信 號"), "微信号");
}

/// The map every source span is checked against: folding and collapsing again, noting for
/// each character written the input it came from.
impl FoldSink for Mapped {
    fn char(&mut self, c: char, (start, end): (usize, usize)) {
        self.origins
            .push((self.text.len() as u32, start as u32, end as u32));
        self.text.push(c);
    }
}

fn fold_mapped(input: &str, lookalikes: bool) -> Mapped {
    let mut mapped = Mapped::default();
    fold_chars(input, lookalikes, &mut mapped);
    mapped
}

/// Calls `keep(range, canonical)` for each part of `text` that survives separator collapse:
/// words as they are, and separator runs between words as one canonical character.
fn collapse_ranges(text: &str, mut keep: impl FnMut(Range<usize>, Option<char>)) {
    collapse_pieces(text, &mut |piece| match piece {
        Piece::Word(range) | Piece::Separators(range) => keep(range, None),
        Piece::Canonical(c, range) => keep(range, Some(c)),
    });
}

fn normalize_mapped(input: &str) -> Mapped {
    let folded = fold_mapped(input, true);
    let (mut text, mut origins) = (String::new(), Vec::new());
    let mut cursor = 0;
    collapse_ranges(&folded.text, |range, canonical| {
        while folded.origins[cursor].0 < range.start as u32 {
            cursor += 1;
        }
        let chars = folded.text[range.clone()].chars().count();
        match canonical {
            Some(c) => {
                let (_, start, _) = folded.origins[cursor];
                let (_, _, end) = folded.origins[cursor + chars - 1];
                origins.push((text.len() as u32, start, end));
                text.push(c);
            }
            None => {
                for (i, c) in folded.text[range].chars().enumerate() {
                    let (_, start, end) = folded.origins[cursor + i];
                    origins.push((text.len() as u32, start, end));
                    text.push(c);
                }
            }
        }
        cursor += chars;
    });
    Mapped { text, origins }
}

#[test]
fn spans_point_back_into_the_input() {
    let input = "请加 微\u{200B} 信 号码";
    let folded = fold(input);
    let collapsed = normalize(input);
    assert_eq!(collapsed, "请加微信号码");
    let start = collapsed.find("微信").unwrap();
    let span = collapsed_source(input, &folded, start..start + "微信".len());
    assert_eq!(&input[span], "微\u{200B} 信");
    // A separator run kept as one space leads back to the whole run.
    let input = "free - gift";
    let at = normalize(input).find(' ').unwrap();
    assert_eq!(collapsed_source(input, &fold(input), at..at + 1), 4..7);
    // Folded text: a full-width word and a ligature, each to the characters written.
    let input = "ＶＸ ﬁne";
    let folded = fold(input);
    assert_eq!(folded, "vx fine");
    assert_eq!(&input[folded_source(input, true, 0..2)], "ＶＸ");
    assert_eq!(&input[folded_source(input, true, 4..5)], "ﬁ");
    assert_eq!(folded_source(input, true, 3..3), 0..0);
}

proptest! {
    #[test]
    fn one_pass_normalization_agrees_with_the_stages(
        s in "([a-zA-Z0-9 .,，。一二三微信號賺錢саѕіnоԁ\u{200B}\u{FF21}-\u{FF3A}é\u{301}🌹:(\\[{点點．]|\\PC){0,30}"
    ) {
        let mut normalized = Normalized::default();
        normalized.of(&s);
        let folded = fold(&s);
        prop_assert_eq!(&normalized.folded, &folded);
        prop_assert_eq!(&fold_mapped(&s, true).text, &folded);
        prop_assert_eq!(&normalized.collapsed, &collapse(&folded));
        let letters: String = folded.chars().filter(|&c| is_letter_or_digit(c)).collect();
        let code_points: Vec<u32> = letters.chars().map(u32::from).collect();
        prop_assert_eq!(&normalized.skeleton, &code_points);
        prop_assert_eq!(normalized.letters, letters.chars().count());
        let numerals = folded.chars().filter(|&c| numeral_value(c).is_some()).count();
        prop_assert_eq!(normalized.digits, numerals);
        prop_assert_eq!(fold_literal(&s), fold_mapped(&s, false).text);
        prop_assert_eq!(normalized.link_chars, LinkChars::in_text(&folded));
        // Links are searched in the literal text with the folded text's notes.
        prop_assert!(normalized.link_chars.contains(LinkChars::in_text(&fold_literal(&s))));
        // Without the skeleton, the rest is the same (and the last skeleton is gone).
        let mut without = normalized.clone();
        without.of_text(&s, false);
        prop_assert!(without.skeleton.is_empty());
        prop_assert_eq!(
            (&without.folded, &without.collapsed, without.letters, without.digits),
            (&normalized.folded, &normalized.collapsed, normalized.letters, normalized.digits)
        );
        prop_assert_eq!((without.lookalikes, without.link_chars), (normalized.lookalikes, normalized.link_chars));
        // Folding with the letters read alongside, without collapsing: the same fold, skeleton
        // and count, and no collapsed text left from before.
        let mut alone = normalized.clone();
        alone.fold_with_letters(&s, true);
        prop_assert_eq!(&alone.folded, &folded);
        prop_assert_eq!((alone.digits, alone.lookalikes, alone.link_chars), (normalized.digits, normalized.lookalikes, normalized.link_chars));
        prop_assert_eq!(&alone.skeleton, &normalized.skeleton);
        prop_assert_eq!(alone.letters, normalized.letters);
        prop_assert!(alone.collapsed.is_empty());
        prop_assert_eq!(&letters_only(&normalized.collapsed), &letters);
    }

    #[test]
    fn normalization_is_idempotent(s in "\\PC{0,40}") {
        let once = normalize(&s);
        prop_assert_eq!(normalize(&once), once);
        let folded = fold(&s);
        prop_assert_eq!(fold(&folded), folded);
    }

    #[test]
    fn normalization_is_idempotent_on_evasive_mixes(
        s in "[a-zA-Z微信號加 .\\-★，。\u{200B}\u{FF21}-\u{FF3A}é\u{301}]{0,30}"
    ) {
        let once = normalize(&s);
        prop_assert_eq!(normalize(&once), once);
    }

    #[test]
    fn source_spans_agree_with_a_map_of_every_character(
        s in "([a-zA-Z0-9 .,，。一二三微信號賺錢саѕіnоԁ\u{200B}\u{FF21}-\u{FF3A}é\u{301}🌹ﬁ㎏:-]|\\PC){0,30}"
    ) {
        let folded = fold(&s);
        for (lookalikes, map) in [(true, fold_mapped(&s, true)), (false, fold_mapped(&s, false))] {
            for (i, c) in map.text.char_indices() {
                for (j, d) in map.text[i..].char_indices().take(3) {
                    let span = i..i + j + d.len_utf8();
                    let found = folded_source(&s, lookalikes, span.clone());
                    prop_assert_eq!(found, map.source_span(span.start, span.end), "{:?} in {:?}", c, &map.text);
                }
            }
        }
        let map = normalize_mapped(&s);
        prop_assert_eq!(&map.text, &normalize(&s));
        for (i, _) in map.text.char_indices() {
            for (j, d) in map.text[i..].char_indices().take(3) {
                let span = i..i + j + d.len_utf8();
                let found = collapsed_source(&s, &folded, span.clone());
                prop_assert!(s.is_char_boundary(found.start) && s.is_char_boundary(found.end));
                prop_assert_eq!(found, map.source_span(span.start, span.end));
            }
        }
    }
}

#[test]
fn spelled_out_letters_against_a_word_stay_with_that_word() {
    assert_eq!(normalize("sale w z v l i f dle"), "sale wzvlif dle");
    assert_eq!(normalize("buy w e c h a t now"), "buy wechat now");
    assert_eq!(normalize("plan b for"), "plan b for");
}

#[test]
fn sounds_are_one_character_per_syllable() {
    let sound = |text: &str| sound_mapped(&normalize(text)).text;
    assert_eq!(sound("微信").chars().count(), 2);
    assert_eq!(sound("薇信"), sound("微信"));
    assert_eq!(sound("威信"), sound("微信"));
    assert_eq!(sound("加V信"), sound("加微信"));
    assert_ne!(sound("微笑"), sound("微信"));
    assert!(
        sound("vip会员").starts_with("vip"),
        "a v in a word is a letter"
    );
    assert_eq!(sound("ok 1"), "ok 1");
    // The map leads back to the characters that sound so.
    let mapped = sound_mapped("加v信");
    let at = mapped.text.char_indices().nth(1).unwrap().0;
    assert_eq!(mapped.source_span(at, mapped.text.len()), 3..7);
}

#[test]
fn quick_character_tests_agree_with_their_definitions() {
    for c in (0..=0x10FFFF).filter_map(char::from_u32) {
        let class = Class::of(c);
        let separator = !is_letter_or_digit(c);
        assert_eq!(class.is_separator(), separator, "{c:?}");
        assert_eq!(class == Class::SentenceBreak, is_sentence_break(c), "{c:?}");
        assert_eq!(class == Class::Cjk, is_cjk(c), "{c:?}");
        let mut buf = [0u8; 4];
        let (at_class, width) = class_at(c.encode_utf8(&mut buf), 0);
        assert!(at_class == class && width == c.len_utf8(), "{c:?}");
        assert_eq!(is_numeral(c), numeral_of(c).is_some(), "{c:?}");
        assert_eq!(numeral_value(c), numeral_of(c), "{c:?}");
    }
}

#[test]
fn folded_text_has_no_capital_ascii_letters() {
    // Regexes rely on it: their capital ASCII letters are taken out before they run.
    for c in (0..=0x10FFFF).filter_map(char::from_u32) {
        let folded = fold(c.encode_utf8(&mut [0; 4]));
        assert!(
            !folded.bytes().any(|b| b.is_ascii_uppercase()),
            "{c:?} → {folded:?}"
        );
    }
}
