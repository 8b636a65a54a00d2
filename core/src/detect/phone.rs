//! Phone numbers in folded text, however they are spelled out.
//!
//! Digits may be ASCII (full-width digits are already folded), Chinese numerals (`一三八`,
//! `壹叁捌`, `幺`, `两`), and separated by up to three of anything that is neither a letter
//! nor a sentence break: spaces, dashes, dots, brackets, slashes, tildes, middle dots, emoji
//! and symbols (`139🍀8888🍀0000`). A run of digits ends at a letter or a sentence break
//! (`，`, `。`, a line break), so two numbers in a list stay two; the whole run must be a
//! number of a known shape, so order numbers and dates do not count.

use std::ops::Range;

use crate::normalize::{is_letter_or_digit, is_sentence_break, numeral_value};
use crate::rule::PhoneKind;

/// A phone number found in text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneHit {
    /// What kind of number.
    pub kind: PhoneKind,
    /// The number as digits, with `+` for international form (`+8613812345678`).
    pub number: String,
    /// Where it is in the searched text (bytes).
    pub span: Range<usize>,
}

fn is_digit_separator(c: char) -> bool {
    !is_letter_or_digit(c) && !is_sentence_break(c) && c != '+'
}

/// The fewest digits of any number [`classify`] accepts.
const MIN_DIGITS: usize = 8;

/// Digits and numerals in `text`, as [`Normalized::digits`] counts them.
fn digits_in(text: &str) -> usize {
    if text.is_ascii() {
        text.bytes().filter(u8::is_ascii_digit).count()
    } else {
        text.chars().filter(|&c| numeral_value(c).is_some()).count()
    }
}

/// Whether a text with this many digits and numerals (see [`Normalized::digits`]) could hold
/// a phone number at all.
///
/// [`Normalized::digits`]: crate::normalize::Normalized::digits
pub fn could_hold_phone(digits: usize) -> bool {
    digits >= MIN_DIGITS
}

/// At most this many separator characters between two digits of one number.
const MAX_GAP: usize = 3;

/// Every phone number of the given kinds in `text`.
pub fn find_phones(text: &str, kinds: &[PhoneKind]) -> Vec<PhoneHit> {
    find_phones_among(text, digits_in(text), kinds)
}

/// [`find_phones`] in a text of `digits` digits and numerals (as [`Normalized::digits`]
/// counts them while folding): the quick test that spares most messages the scan, without
/// counting again.
///
/// [`Normalized::digits`]: crate::normalize::Normalized::digits
pub fn find_phones_among(text: &str, digits: usize, kinds: &[PhoneKind]) -> Vec<PhoneHit> {
    let mut hits = Vec::new();
    if !could_hold_phone(digits) {
        return hits;
    }
    let mut run = DigitRun::default();
    for (at, c) in text.char_indices() {
        if let Some(d) = numeral_value(c) {
            if run.digits.is_empty() && !run.plus {
                run.start = at;
            }
            run.digits.push(char::from(b'0' + d));
            run.end = at + c.len_utf8();
            run.gap = 0;
        } else if c == '+' && run.digits.is_empty() {
            run.plus = true;
            run.start = at;
        } else if is_digit_separator(c) && !run.digits.is_empty() && run.gap < MAX_GAP {
            run.gap += 1;
        } else {
            // Nearly every character ends no run: most are letters between no digits.
            if run.is_started() {
                run.finish(kinds, &mut hits);
            }
            if c == '+' {
                run.plus = true;
                run.start = at;
            }
        }
    }
    run.finish(kinds, &mut hits);
    hits
}

#[derive(Default)]
struct DigitRun {
    digits: String,
    plus: bool,
    start: usize,
    end: usize,
    gap: usize,
}

impl DigitRun {
    fn is_started(&self) -> bool {
        !self.digits.is_empty() || self.plus
    }

    fn finish(&mut self, kinds: &[PhoneKind], hits: &mut Vec<PhoneHit>) {
        if !self.is_started() {
            return;
        }
        if let Some((kind, number)) = classify(&self.digits, self.plus)
            && kinds.contains(&kind)
        {
            hits.push(PhoneHit {
                kind,
                number,
                span: self.start..self.end,
            });
        }
        self.digits.clear();
        self.plus = false;
        self.gap = 0;
    }
}

fn is_mobile(d: &str) -> bool {
    let b = d.as_bytes();
    b.len() == 11 && b[0] == b'1' && (b'3'..=b'9').contains(&b[1])
}

/// Area code and subscriber number, without the trunk `0`.
fn is_landline_national(d: &str) -> bool {
    let b = d.as_bytes();
    // Beijing's area code is 10; any other leading 1 is a mobile number.
    (9..=11).contains(&b.len()) && b[0] != b'0' && (b[0] != b'1' || b[1] == b'0')
}

fn classify(digits: &str, plus: bool) -> Option<(PhoneKind, String)> {
    let international = if plus {
        Some(digits)
    } else {
        digits.strip_prefix("00")
    };
    if let Some(rest) = international {
        if let Some(national) = rest.strip_prefix("86") {
            if is_mobile(national) {
                return Some((PhoneKind::Mobile, format!("+86{national}")));
            }
            if is_landline_national(national) {
                return Some((PhoneKind::Landline, format!("+86{national}")));
            }
        }
        let valid_e164 = (8..=15).contains(&rest.len()) && !rest.starts_with('0');
        return valid_e164.then(|| (PhoneKind::International, format!("+{rest}")));
    }
    if let Some(national) = digits.strip_prefix("86")
        && is_mobile(national)
    {
        return Some((PhoneKind::Mobile, format!("+86{national}")));
    }
    if is_mobile(digits) {
        return Some((PhoneKind::Mobile, format!("+86{digits}")));
    }
    if let Some(national) = digits.strip_prefix('0')
        && is_landline_national(national)
    {
        return Some((PhoneKind::Landline, format!("+86{national}")));
    }
    let service = digits.len() == 10 && (digits.starts_with("400") || digits.starts_with("800"));
    service.then(|| (PhoneKind::Landline, digits.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::fold;

    const ALL: [PhoneKind; 3] = [
        PhoneKind::Mobile,
        PhoneKind::Landline,
        PhoneKind::International,
    ];

    fn numbers(text: &str) -> Vec<(PhoneKind, String)> {
        find_phones(&fold(text), &ALL)
            .into_iter()
            .map(|h| (h.kind, h.number))
            .collect()
    }

    fn mobile(n: &str) -> Vec<(PhoneKind, String)> {
        vec![(PhoneKind::Mobile, n.to_owned())]
    }

    #[test]
    fn plain_and_prefixed_mobile_numbers() {
        assert_eq!(numbers("call 13812345678 now"), mobile("+8613812345678"));
        assert_eq!(numbers("+86 138 1234 5678"), mobile("+8613812345678"));
        assert_eq!(numbers("0086-138-1234-5678"), mobile("+8613812345678"));
        assert_eq!(numbers("(+86)13812345678"), mobile("+8613812345678"));
    }

    #[test]
    fn spelled_out_mobile_numbers() {
        assert_eq!(
            numbers("电话１３８１２３４５６７８"),
            mobile("+8613812345678")
        );
        assert_eq!(numbers("138.1234.5678"), mobile("+8613812345678"));
        assert_eq!(numbers("1 3 8 1 2 3 4 5 6 7 8"), mobile("+8613812345678"));
        assert_eq!(
            numbers("加我一三八一二三四五六七八"),
            mobile("+8613812345678")
        );
        assert_eq!(numbers("壹叁捌幺贰叁肆伍陆柒捌"), mobile("+8613812345678"));
        assert_eq!(
            numbers("138\u{200B}1234\u{200B}5678"),
            mobile("+8613812345678")
        );
    }

    #[test]
    fn symbols_and_emoji_between_digits() {
        for text in [
            "139🍀8888🍀0000",
            "139~8888~0000",
            "139・8888・0000",
            "139★8888★0000",
            "1·3·9·8·8·8·8·0·0·0·0",
        ] {
            assert_eq!(numbers(text), mobile("+8613988880000"), "{text}");
        }
        assert_eq!(
            numbers("13988880000，13999990000"),
            [mobile("+8613988880000"), mobile("+8613999990000")].concat(),
            "a sentence break ends a number"
        );
        assert!(numbers("139a8888b0000").is_empty(), "letters end a number");
    }

    #[test]
    fn landlines_and_service_numbers() {
        assert_eq!(
            numbers("座机 010-12345678"),
            vec![(PhoneKind::Landline, "+861012345678".to_owned())]
        );
        assert_eq!(
            numbers("0755 8765 4321"),
            vec![(PhoneKind::Landline, "+8675587654321".to_owned())]
        );
        assert_eq!(
            numbers("400-800-1234"),
            vec![(PhoneKind::Landline, "4008001234".to_owned())]
        );
    }

    #[test]
    fn international_numbers_in_e164_form() {
        assert_eq!(
            numbers("WhatsApp +44 20 7946 0958"),
            vec![(PhoneKind::International, "+442079460958".to_owned())]
        );
        assert_eq!(
            numbers("+1 (415) 555-2671"),
            vec![(PhoneKind::International, "+14155552671".to_owned())]
        );
    }

    #[test]
    fn ordinary_numbers_are_not_phones() {
        assert!(numbers("订单号 20261121123456789").is_empty());
        assert!(numbers("2026-11-21 会议 13:45").is_empty());
        assert!(numbers("价格 138.00 元，共 3 件").is_empty());
        assert!(numbers("version 1.2.3").is_empty());
        assert!(numbers("一个人两个人").is_empty());
        assert!(numbers("1381234567").is_empty());
    }

    #[test]
    fn kinds_can_be_selected_and_spans_point_at_the_number() {
        let text = "tel 13812345678 or +44 20 7946 0958";
        let hits = find_phones(text, &[PhoneKind::International]);
        assert_eq!(hits.len(), 1);
        assert_eq!(&text[hits[0].span.clone()], "+44 20 7946 0958");
    }
}
