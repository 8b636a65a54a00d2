//! Links and bare domains in folded text.
//!
//! A URL with a scheme (`http://`, `https://`) is read by the `url` crate, so the host is what
//! a browser would open: after the last `@` of the authority (`https://shop.allowed.example@
//! other.test` goes to `other.test`), before a port, with percent-escapes decoded (`evil%2ecom`)
//! and a trailing dot dropped; a backslash ends the authority as browsers treat it as `/`.
//!
//! Bare domains (no scheme) are found too: `t.me/x`, `shop.example.co.uk`, internationalized
//! ones (`例子.中国`, `购物.商城`) and domains with a disguised dot: `。`, `点`, `．`, `(.)`,
//! `[.]`, `(dot)` or a spaced ` dot `, padded with spaces or not (`baidu 。com`). A bare domain
//! counts only when its suffix is on the public suffix list, so `v1.2` is not a link, and:
//!
//! - a disguised dot counts only between domain-like labels: the label before it has two or
//!   more characters and is not an hour (`下午3点TV直播` and `13点tv` are times, not domains);
//! - a bare name whose suffix is a common file extension (`md`, `rs`, `py`, `sh`, `zip`,
//!   `mov`, `ps`, `java`, `mobi`, `cab`) is a file name (`notes.md`, `build.sh`), unless it
//!   has `www.` or a path (`notes.md/x`); with a scheme it is always a link;
//! - an address after `@` without a scheme (`bob@example.com`) is mail, not a link.
//!
//! Zero-width tricks are already gone after folding. Hosts are reported in ASCII (punycode)
//! together with their registrable domain, which is what allow and deny lists match. The text
//! searched is folded without the look-alike mapping, so `аllowed.example` with a Cyrillic
//! `а` is the other domain it is.

use std::ops::Range;

use rustc_hash::FxHashSet;

use crate::normalize::{LinkChars, after_latin_label, is_letter_or_digit};

/// A link found in text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkHit {
    /// The host, lower-case ASCII (punycode for internationalized names).
    pub host: String,
    /// The registrable domain (`example.co.uk` for `a.b.example.co.uk`).
    pub domain: String,
    /// Where the host is in the searched text (bytes).
    pub span: Range<usize>,
}

/// Disguised dots, longest first. A plain `.` is the last.
const DOT_TOKENS: [&str; 9] = [
    "(dot)", "[dot]", " dot ", "(.)", "[.]", "{.}", "。", "点", ".",
];

/// Public suffixes that are also common file extensions: a bare `name.ext` is a file.
const FILE_EXTENSIONS: [&str; 10] = [
    "md", "rs", "py", "sh", "zip", "mov", "ps", "java", "mobi", "cab",
];

/// Every link in `text`.
pub fn find_links(text: &str) -> Vec<LinkHit> {
    find_links_among(text, LinkChars::ALL)
}

/// Every link in `text`, which holds no link characters but `link_chars` (as
/// [`crate::normalize::Normalized`] notes them while folding): the quick test that spares
/// most messages the scan then searches only for those.
pub fn find_links_among(text: &str, link_chars: LinkChars) -> Vec<LinkHit> {
    match first_link_char(text, link_chars) {
        Some(first) => links_from(text, scan_start(text, first)),
        None => Vec::new(),
    }
}

/// Every link in `text` that starts at byte `from` or later; from a [`scan_start`], every link.
fn links_from(text: &str, from: usize) -> Vec<LinkHit> {
    let view = DotView::new(text, from);
    let chars = &view.chars;
    let mut hits = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let scheme_len = scheme_at(chars, i);
        if scheme_len > 0 {
            let authority_end = authority_end(chars, i + scheme_len);
            let authority: String = chars[i + scheme_len..authority_end]
                .iter()
                .map(|c| c.0)
                .collect();
            match url_host(&authority) {
                Some((host, domain)) => {
                    hits.push(LinkHit {
                        host,
                        domain,
                        span: chars[i].1..chars[authority_end - 1].2,
                    });
                    i = skip_url_tail(chars, authority_end);
                }
                None => i += scheme_len,
            }
            continue;
        }
        if !starts_bare_host(chars, i) {
            i += 1;
            continue;
        }
        let end = bare_host_end(chars, i);
        if !chars[i..end].iter().any(|c| c.0 == '.') {
            i = end.max(i + 1);
            continue;
        }
        let raw: String = chars[i..end].iter().map(|c| c.0).collect();
        let raw = raw.trim_end_matches(['.', '-']);
        let host_end = i + raw.chars().count();
        let with_path = has_path(chars, host_end);
        match validate_bare_host(raw, with_path) {
            Some((host, domain)) => {
                hits.push(LinkHit {
                    host,
                    domain,
                    span: chars[i].1..chars[host_end - 1].2,
                });
                i = skip_url_tail(chars, host_end);
            }
            None => i = end.max(i + 1),
        }
    }
    hits
}

/// Where the first character a link may be written with is: a scheme's `://`, a dot after
/// a letter or digit, or a disguised dot after a Latin label (allowing for spaces). `None`
/// spares most chat messages the scan. Only the characters among `link_chars` are searched for.
fn first_link_char(text: &str, link_chars: LinkChars) -> Option<usize> {
    use memchr::memmem::Finder;
    use std::sync::OnceLock;
    static FINDERS: OnceLock<[Finder<'static>; 4]> = OnceLock::new();
    let [scheme, spaced_dot, circle_dot, dian] = FINDERS.get_or_init(|| {
        [
            Finder::new("://"),
            Finder::new(" dot "),
            Finder::new("。"),
            Finder::new("点"),
        ]
    });
    let has = |chars| link_chars.contains(chars);
    let bytes = text.as_bytes();
    // A disguised dot counts only after a Latin label (which may end in `-`); a plain one
    // after any label, which may end in `-` or (an empty label) a dot.
    let latin_before = |i: &usize| after_latin_label(&text[..*i]);
    let label_before = |i: &usize| {
        text[..*i]
            .chars()
            .rev()
            .find(|c| ![' ', '-', '.'].contains(c))
            .is_some_and(is_letter_or_digit)
    };
    // The first of each kind, each kind searched only if the text holds its characters.
    [
        has(LinkChars::COLON).then(|| scheme.find(bytes)),
        has(LinkChars::LETTER_D).then(|| spaced_dot.find(bytes)),
        has(LinkChars::DOT).then(|| memchr::memchr_iter(b'.', bytes).find(label_before)),
        has(LinkChars::BRACKET)
            .then(|| memchr::memchr3_iter(b'(', b'[', b'{', bytes).find(latin_before)),
        has(LinkChars::FULL_STOP).then(|| circle_dot.find_iter(bytes).find(latin_before)),
        has(LinkChars::DIAN).then(|| dian.find_iter(bytes).find(latin_before)),
    ]
    .into_iter()
    .flatten()
    .flatten()
    .min()
}

/// Where a scan finds every link of `text`, whose first link character is at byte `first`:
/// at the character before the label that leads to it (spaces, then letters and digits of
/// one script and `-`), which a link cannot reach across. A scan of the whole text stands
/// there too: nothing before it can be part of a link.
fn scan_start(text: &str, first: usize) -> usize {
    // The label's script is its first letter's, as where a bare host ends (`-` has none).
    let mut script = None;
    text[..first]
        .char_indices()
        .rev()
        .skip_while(|&(_, c)| c == ' ')
        .find(|&(_, c)| {
            c != '-'
                && (!is_letter_or_digit(c) || *script.get_or_insert(latinish(c)) != latinish(c))
        })
        .map_or(0, |(at, _)| at)
}

/// A character that makes the next one part of the same token: `user@host`, `a_b.c`.
fn continues_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '@' | '_' | '-' | '.' | '/' | '\\')
}

/// The length of `http://` or `https://` starting at `i`, or 0.
fn scheme_at(chars: &[(char, usize, usize)], i: usize) -> usize {
    if chars[i].0 != 'h' {
        return 0;
    }
    for scheme in ["https://", "http://"] {
        // ASCII: as many characters as bytes.
        let n = scheme.len();
        if chars.len() >= i + n && chars[i..i + n].iter().map(|c| c.0).eq(scheme.chars()) {
            return n;
        }
    }
    0
}

/// Where a URL's authority (`user:pass@host:port`) ends: at a path, query, fragment or
/// backslash, or at anything no authority holds. A host that starts in Latin letters ends
/// where other letters start (`example.com了解`).
fn authority_end(chars: &[(char, usize, usize)], start: usize) -> usize {
    let mut end = start;
    while end < chars.len() {
        let c = chars[end].0;
        let allowed = c.is_ascii_alphanumeric()
            || matches!(
                c,
                '-' | '.'
                    | '_'
                    | '~'
                    | '%'
                    | '!'
                    | '$'
                    | '&'
                    | '*'
                    | '+'
                    | '='
                    | ':'
                    | '@'
                    | '['
                    | ']'
            )
            || (!c.is_ascii() && is_letter_or_digit(c));
        if !allowed {
            break;
        }
        end += 1;
    }
    let host_start = (start..end)
        .rev()
        .find(|&k| chars[k].0 == '@')
        .map_or(start, |at| at + 1);
    if chars.get(host_start).is_some_and(|c| c.0.is_ascii()) {
        end = (host_start..end)
            .find(|&k| !chars[k].0.is_ascii())
            .unwrap_or(end);
    }
    end
}

/// The host a browser would open for `authority`, in ASCII, with its registrable domain.
fn url_host(authority: &str) -> Option<(String, String)> {
    let (host, is_domain) = read_host(authority)?;
    let host = host.trim_end_matches('.');
    match is_domain {
        true if host.contains('.') => Some((host.to_owned(), registrable_domain(host))),
        true => None,
        false => Some((host.to_owned(), host.to_owned())),
    }
}

/// The host the `url` crate reads from `http://{authority}/`, and whether it is a domain
/// (not an IP address). A plain name, as nearly every link in chat is, is read here as the
/// crate would read it (a test holds the two together), without building and parsing a URL.
fn read_host(authority: &str) -> Option<(String, bool)> {
    if is_plain_domain(authority) {
        return Some((authority.to_owned(), true));
    }
    let url = url::Url::parse(&format!("http://{authority}/")).ok()?;
    let is_domain = matches!(url.host()?, url::Host::Domain(_));
    Some((url.host_str()?.to_owned(), is_domain))
}

/// Labels of lower-case ASCII letters, digits and hyphens, none empty (one trailing dot
/// aside) and none punycode (`xn--`, which the crate decodes to check), the last starting with
/// a letter, so that it is no number the crate would read as part of an IPv4 address.
fn is_plain_domain(authority: &str) -> bool {
    let name = authority.strip_suffix('.').unwrap_or(authority);
    // One pass over the bytes, label by label: every link in a message comes through here.
    let mut label_start = 0;
    for (at, b) in name.bytes().enumerate() {
        match b {
            b'.' => {
                let label = &name[label_start..at];
                if label.is_empty() || label.starts_with("xn--") {
                    return false;
                }
                label_start = at + 1;
            }
            b'a'..=b'z' | b'0'..=b'9' | b'-' => {}
            _ => return false,
        }
    }
    let last = &name[label_start..];
    !last.starts_with("xn--") && last.starts_with(|c: char| c.is_ascii_lowercase())
}

/// Whether a bare host may start at `i`: a letter or digit that does not continue a word,
/// an address (`bob@…`) or a path.
fn starts_bare_host(chars: &[(char, usize, usize)], i: usize) -> bool {
    let c = chars[i].0;
    if !is_letter_or_digit(c) {
        return false;
    }
    match i.checked_sub(1).map(|p| chars[p].0) {
        None => true,
        // A Latin host may follow letters of another script (`访问example.com`); any host
        // starts where its script's letters start.
        Some(p) => {
            let same_word = is_letter_or_digit(p) && latinish(p) == latinish(c);
            !continues_word(p) && !same_word
        }
    }
}

/// Latin, Greek and Cyrillic letters, which mix within one label (a look-alike host such as
/// `аpple.com` is one name), as opposed to scripts written without spaces.
fn latinish(c: char) -> bool {
    matches!(c, '\0'..='\u{052F}' | '\u{1E00}'..='\u{1FFF}')
}

/// Where a bare host starting at `start` ends: labels of letters, digits and `-` joined by
/// dots, each label in one kind of script, so `example.com了解` ends before `了`.
fn bare_host_end(chars: &[(char, usize, usize)], start: usize) -> usize {
    let mut end = start;
    let mut label_latin: Option<bool> = None;
    while end < chars.len() {
        let c = chars[end].0;
        if c == '.' {
            label_latin = None;
        } else if c == '-' || is_letter_or_digit(c) {
            let latin = latinish(c);
            if c != '-' && *label_latin.get_or_insert(latin) != latin {
                break;
            }
        } else {
            break;
        }
        end += 1;
    }
    end
}

/// Whether a path, port, query or fragment follows a host ending at `i`.
fn has_path(chars: &[(char, usize, usize)], i: usize) -> bool {
    match (chars.get(i).map(|c| c.0), chars.get(i + 1).map(|c| c.0)) {
        (Some('/'), _) => true,
        (Some(':'), Some(d)) => d.is_ascii_digit(),
        (Some('?' | '#'), Some(n)) => n.is_ascii_graphic(),
        _ => false,
    }
}

/// Skips a path, query or port after a host.
fn skip_url_tail(chars: &[(char, usize, usize)], mut i: usize) -> usize {
    if i < chars.len() && matches!(chars[i].0, '/' | ':' | '?' | '#') {
        while i < chars.len()
            && chars[i].0.is_ascii_graphic()
            && !matches!(chars[i].0, '"' | '\'' | '<' | '>')
        {
            i += 1;
        }
    }
    i
}

/// Checks a bare host candidate: a known public suffix with a label of its own before it,
/// and not a file name. Returns it in ASCII with its registrable domain.
fn validate_bare_host(raw: &str, with_path: bool) -> Option<(String, String)> {
    if !raw.contains('.') {
        return None;
    }
    let (ascii, _) = read_host(raw)?;
    if ascii.bytes().all(|b| b.is_ascii_digit() || b == b'.') || ascii.starts_with('[') {
        // Bare IP addresses are version numbers as often as not.
        return None;
    }
    let suffix = psl::suffix(ascii.as_bytes())?;
    if !suffix.is_known() || suffix.as_bytes().len() >= ascii.len() {
        return None;
    }
    let is_file_name = !with_path
        && !ascii.starts_with("www.")
        && FILE_EXTENSIONS
            .iter()
            .any(|ext| suffix.as_bytes() == ext.as_bytes());
    if is_file_name {
        return None;
    }
    let domain = registrable_domain(&ascii);
    Some((ascii, domain))
}

/// The registrable domain of an ASCII host, or the host itself when it has none.
pub fn registrable_domain(host: &str) -> String {
    psl::domain_str(host).unwrap_or(host).to_owned()
}

/// Normalizes a domain written in a rule (`Example.COM`, `*.example.com`,
/// `https://例子.中国/path`) to a lower-case ASCII host, as the `url` crate reads it.
pub fn normalize_domain(entry: &str) -> Result<String, String> {
    let trimmed = entry.trim();
    let trimmed = trimmed.strip_prefix("*.").unwrap_or(trimmed);
    let url = if trimmed.contains("://") {
        url::Url::parse(trimmed)
    } else {
        url::Url::parse(&format!("http://{trimmed}"))
    };
    url.ok()
        .and_then(|u| u.host_str().map(|h| h.trim_end_matches('.').to_owned()))
        .filter(|h| !h.is_empty() && !trimmed.contains(char::is_whitespace))
        .ok_or_else(|| format!("`{entry}` is not a domain (write it like example.com)"))
}

/// A set of domains where an entry also covers its subdomains.
#[derive(Debug, Clone, Default)]
pub struct DomainSet {
    hosts: FxHashSet<Box<str>>,
}

impl DomainSet {
    /// A set of normalized hosts.
    pub fn new(hosts: impl IntoIterator<Item = String>) -> DomainSet {
        DomainSet {
            hosts: hosts.into_iter().map(String::into_boxed_str).collect(),
        }
    }

    /// The entry covering `host` (the host or one of its parents), if any.
    pub fn covering<'a>(&'a self, host: &str) -> Option<&'a str> {
        let mut rest = host;
        loop {
            if let Some(entry) = self.hosts.get(rest) {
                return Some(entry);
            }
            rest = rest.split_once('.')?.1;
        }
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }
}

/// The text with disguised dots turned into `.`, each char keeping its source range.
struct DotView {
    chars: Vec<(char, usize, usize)>,
}

impl DotView {
    /// The characters of `text` from byte `from` on.
    fn new(text: &str, from: usize) -> DotView {
        let mut chars: Vec<(char, usize, usize)> = Vec::with_capacity(text.len() - from);
        let mut at = from;
        while at < text.len() {
            // Every token starts with one of these bytes (`。` and `点` with 0xE3 and 0xE7).
            let may_start_token = matches!(
                text.as_bytes()[at],
                b'.' | b'(' | b'[' | b'{' | b' ' | 0xE3 | 0xE7
            );
            if may_start_token
                && let Some(token) = DOT_TOKENS.iter().find(|t| {
                    // The first byte first: most characters here are Chinese ones led by 0xE7.
                    t.as_bytes()[0] == text.as_bytes()[at] && text[at..].starts_with(**t)
                })
            {
                let after = at + token.len();
                let next_label = text[after..].trim_start_matches(' ');
                let left = chars
                    .iter()
                    .rev()
                    .skip_while(|c| c.0 == ' ')
                    .take_while(|c| c.0.is_ascii_alphanumeric() || c.0 == '-')
                    .count();
                let left_is_label = left > 0;
                let right_is_label = next_label.starts_with(|c: char| c.is_ascii_alphanumeric());
                let is_dot = if *token == "." {
                    // A plain dot with a space after but not before ends a sentence (`Hi. Me`).
                    let space_before = chars.last().is_some_and(|c| c.0 == ' ');
                    let space_after = next_label.len() < text.len() - after;
                    left_is_label && right_is_label && space_before == space_after
                } else {
                    left_is_label && right_is_label && domain_like(&chars[chars.len() - left..])
                };
                if is_dot {
                    while chars.last().is_some_and(|c| c.0 == ' ') {
                        chars.pop();
                    }
                    chars.push(('.', at, after));
                    at = text.len() - next_label.len();
                    continue;
                }
            }
            let c = text[at..].chars().next().unwrap_or(' ');
            chars.push((c, at, at + c.len_utf8()));
            at += c.len_utf8();
        }
        DotView { chars }
    }
}

/// Whether the label before a disguised dot can start a domain: two characters or more, and
/// not an hour (`3点`, `13点` are times of day).
fn domain_like(label: &[(char, usize, usize)]) -> bool {
    let is_hour = label.len() <= 2 && label.iter().all(|c| c.0.is_ascii_digit());
    label.len() >= 2 && !is_hour
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::fold_literal;

    fn hosts(text: &str) -> Vec<String> {
        find_links(&fold_literal(text))
            .into_iter()
            .map(|h| h.host)
            .collect()
    }

    #[test]
    fn plain_names_are_told_from_those_the_url_crate_must_read() {
        for plain in ["t.me", "shop.example.co.uk", "a-b.example.", "x1.y2z"] {
            assert!(is_plain_domain(plain), "{plain}");
        }
        // Numbers (IPv4 parts), punycode, empty labels, escapes, capitals, userinfo, ports.
        for other in [
            "1.2.3.4",
            "example.123",
            "a.0x1f",
            "xn--fiqs8s.cn",
            "a..b",
            ".a",
            "a.b..",
            "evil%2ecom",
            "Example.com",
            "u@host.com",
            "host.com:80",
            "例子.中国",
        ] {
            assert!(!is_plain_domain(other), "{other}");
        }
    }

    #[test]
    fn urls_and_bare_domains() {
        assert_eq!(
            hosts("see https://www.Example.com/a?b=1 now"),
            ["www.example.com"]
        );
        assert_eq!(hosts("加群 t.me/joinchat/abc 哦"), ["t.me"]);
        assert_eq!(hosts("访问example.com了解"), ["example.com"]);
        // A Chinese label before a Latin suffix.
        assert_eq!(hosts("看 例子.com 吧"), ["xn--fsqu00a.com"]);
        assert_eq!(
            hosts("shop: sub.shop.example.co.uk"),
            ["sub.shop.example.co.uk"]
        );
        assert_eq!(hosts("http://127.0.0.1:8080/x"), ["127.0.0.1"]);
    }

    #[test]
    fn internationalized_hosts_become_punycode() {
        assert_eq!(hosts("https://例子.中国/路径"), ["xn--fsqu00a.xn--fiqs8s"]);
        assert_eq!(hosts("xn--fsqu00a.xn--fiqs8s"), ["xn--fsqu00a.xn--fiqs8s"]);
    }

    #[test]
    fn disguised_dots_and_invisible_characters() {
        assert_eq!(hosts("taobao。com"), ["taobao.com"]);
        assert_eq!(hosts("taobao点com"), ["taobao.com"]);
        assert_eq!(hosts("baidu (dot) com"), ["baidu.com"]);
        assert_eq!(hosts("baidu [.] com"), ["baidu.com"]);
        assert_eq!(hosts("baidu . com"), ["baidu.com"]);
        assert_eq!(hosts("ｅｘａｍｐｌｅ．ｃｏｍ"), ["example.com"]);
        assert_eq!(hosts("exa\u{200B}mple.c\u{200C}om"), ["example.com"]);
    }

    #[test]
    fn the_host_is_what_a_browser_opens() {
        // What follows the last `@` of the authority is the host.
        assert_eq!(
            hosts("https://shop.allowed.example@other.test/x"),
            ["other.test"]
        );
        assert_eq!(hosts("https://allowed.example@evil.com"), ["evil.com"]);
        assert_eq!(hosts("https://allowed.example:443@evil.com/"), ["evil.com"]);
        assert_eq!(hosts("https://a@b@evil.com/"), ["evil.com"]);
        assert_eq!(
            hosts("https://user:pw@allowed.example/x"),
            ["allowed.example"]
        );
        // A backslash ends the authority, as browsers read it.
        assert_eq!(
            hosts("https://allowed.example\\@evil.com/"),
            ["allowed.example"]
        );
        assert_eq!(hosts("https://evil.com\\allowed.example"), ["evil.com"]);
        // Percent-escapes in hosts are decoded.
        assert_eq!(hosts("https://evil%2ecom/"), ["evil.com"]);
        assert_eq!(
            hosts("https://allowed.example%2eevil.com/"),
            ["allowed.example.evil.com"]
        );
        // A trailing dot is the same host; an `@` in the path is path.
        assert_eq!(hosts("https://allowed.example./x"), ["allowed.example"]);
        assert_eq!(hosts("https://evil.com/@allowed.example"), ["evil.com"]);
        assert_eq!(hosts("https://evil.com:8443/x"), ["evil.com"]);
        assert_eq!(hosts("http://0x7f.1/"), ["127.0.0.1"]);
        assert_eq!(
            hosts("http://allowed.example.evil.com/"),
            ["allowed.example.evil.com"]
        );
        assert_eq!(hosts("(see https://a.example.com)"), ["a.example.com"]);
    }

    #[test]
    fn look_alike_hosts_are_other_hosts() {
        assert_eq!(
            hosts("https://аllowed.example/x"),
            ["xn--llowed-2nf.example"]
        );
        assert_eq!(hosts("аllowed.com"), ["xn--llowed-2nf.com"]);
    }

    #[test]
    fn file_names_are_not_domains() {
        assert!(hosts("see notes.md and build.sh, then run main.py").is_empty());
        assert!(hosts("发你 report.zip 和 clip.mov").is_empty());
        assert_eq!(hosts("https://notes.md/x"), ["notes.md"]);
        assert_eq!(hosts("notes.md/x"), ["notes.md"]);
        assert_eq!(hosts("www.notes.md"), ["www.notes.md"]);
        assert_eq!(hosts("setup.zip:8080"), ["setup.zip"]);
        assert_eq!(hosts("bun.com"), ["bun.com"], "other suffixes are domains");
    }

    #[test]
    fn disguised_dots_only_between_domain_like_labels() {
        assert!(hosts("下午3点TV直播开始").is_empty());
        assert!(hosts("晚上13点tv见").is_empty());
        assert!(hosts("a点com").is_empty());
        assert_eq!(hosts("163点com"), ["163.com"]);
        assert_eq!(hosts("baidu dot com"), ["baidu.com"]);
        assert_eq!(hosts("qq(dot)com"), ["qq.com"]);
        assert!(hosts("polka dot dress").is_empty());
    }

    #[test]
    fn bare_internationalized_domains() {
        assert_eq!(hosts("购物.商城"), ["xn--g2xx48c.xn--czru2d"]);
        assert_eq!(hosts("访问 例子.中国 吧"), ["xn--fsqu00a.xn--fiqs8s"]);
        assert_eq!(hosts("shop.中国"), ["shop.xn--fiqs8s"]);
        assert!(hosts("我们明天见.中国队加油").is_empty());
        assert!(hosts("好的.谢谢").is_empty());
        let hit = &find_links(&fold_literal("看 例子.中国 吧"))[0];
        assert_eq!(hit.domain, "xn--fsqu00a.xn--fiqs8s");
    }

    #[test]
    fn things_that_are_not_links() {
        assert!(hosts("file.txt v1.2.3 e.g. 3.14").is_empty());
        assert!(hosts("Hello. Me too").is_empty());
        assert!(hosts("mail me at bob@example.com").is_empty());
        assert!(hosts("好的。谢谢").is_empty());
        assert!(hosts("co.uk").is_empty());
    }

    #[test]
    fn paths_of_a_url_are_not_links_of_their_own() {
        assert_eq!(
            hosts("https://docs.example.com/guide/readme.md"),
            ["docs.example.com"]
        );
    }

    #[test]
    fn spans_cover_the_host_as_written() {
        let text = "go to taobao 。com now";
        let hit = &find_links(text)[0];
        assert_eq!(&text[hit.span.clone()], "taobao 。com");
        assert_eq!(hit.domain, "taobao.com");
    }

    #[test]
    fn domain_sets_cover_subdomains() {
        let set = DomainSet::new(["example.com".to_owned(), "docs.corp.cn".to_owned()]);
        assert_eq!(set.covering("a.b.example.com"), Some("example.com"));
        assert_eq!(set.covering("example.com"), Some("example.com"));
        assert_eq!(set.covering("badexample.com"), None);
        assert_eq!(set.covering("corp.cn"), None);
        assert_eq!(set.covering("x.docs.corp.cn"), Some("docs.corp.cn"));
    }

    #[test]
    fn rule_domains_are_normalized() {
        assert_eq!(normalize_domain("Example.COM").unwrap(), "example.com");
        assert_eq!(normalize_domain("*.example.com").unwrap(), "example.com");
        assert_eq!(
            normalize_domain("https://例子.中国/x").unwrap(),
            "xn--fsqu00a.xn--fiqs8s"
        );
        assert!(normalize_domain("not a domain").is_err());
        assert_eq!(
            normalize_domain("https://allowed.example@evil.com/").unwrap(),
            "evil.com"
        );
        assert_eq!(normalize_domain("example.com.").unwrap(), "example.com");
    }

    #[test]
    fn the_quick_test_reads_only_the_noted_characters() {
        // Each disguise is found with its own characters noted, and missed without them.
        for (text, chars) in [
            ("go https://x.example", LinkChars::COLON | LinkChars::DOT),
            ("shop dot com", LinkChars::LETTER_D),
            ("shop(.)com", LinkChars::BRACKET | LinkChars::DOT),
            ("taobao 。com", LinkChars::FULL_STOP),
            ("taobao点com", LinkChars::DIAN),
        ] {
            assert!(LinkChars::in_text(text).contains(chars));
            assert_eq!(find_links_among(text, chars).len(), 1, "{text}");
            assert_eq!(find_links_among(text, chars), find_links(text), "{text}");
            assert_eq!(find_links_among(text, LinkChars::NONE), [], "{text}");
        }
        // A Chinese sentence's full stop is not noted: only one after a Latin label may be a
        // disguised dot.
        assert_eq!(LinkChars::in_text("我们明天见。好的。"), LinkChars::NONE);
        assert_eq!(LinkChars::in_text("ok 。 fine"), LinkChars::FULL_STOP);
        assert_eq!(LinkChars::in_text("shop-。"), LinkChars::FULL_STOP);
    }

    /// Pieces of text around links: labels of two scripts, dots plain and disguised, schemes,
    /// and the characters that join a word to what follows (`@`, `_`, `-`, `/`).
    const LINKISH: [&str; 24] = [
        "a", "b1", "xn", "例子", "中国", "测", ".", "。", "点", " ", "@", "_", "-", "/", "com",
        "me", " dot ", "(.)", "[dot]", "https://", "http://", ":", "3", "，",
    ];

    proptest::proptest! {
        #[test]
        fn noting_a_texts_link_characters_finds_every_link(
            text in "([a-z0-9 .:/()\\[\\]{}@。点]|com|dot|https://|\\PC){0,24}"
        ) {
            let noted = LinkChars::in_text(&text);
            proptest::prop_assert_eq!(find_links_among(&text, noted), find_links(&text));
        }


        #[test]
        fn a_plain_name_is_read_as_the_url_crate_reads_it(
            authority in "([a-z0-9\\-.]|xn--|0x|com|\\.\\.){1,12}"
        ) {
            let by_crate = url::Url::parse(&format!("http://{authority}/")).ok().and_then(|url| {
                let is_domain = matches!(url.host()?, url::Host::Domain(_));
                Some((url.host_str()?.to_owned(), is_domain))
            });
            if is_plain_domain(&authority) {
                proptest::prop_assert_eq!(read_host(&authority), by_crate);
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3_000))]

        #[test]
        fn a_scan_from_the_first_link_character_finds_what_a_whole_scan_finds(
            pieces in proptest::collection::vec(proptest::sample::select(&LINKISH[..]), 0..14)
        ) {
            let text = pieces.concat();
            proptest::prop_assert_eq!(find_links(&text), links_from(&text, 0));
        }
    }
}
