//! Links and bare domains in folded text.
//!
//! Finds `http(s)://` URLs (including internationalized hosts such as `例子.中国`) and bare
//! domains such as `t.me/x` or `shop.example.co.uk`, also when the dot is disguised as `。`,
//! `点`, `(.)`, `[.]` or `(dot)` or padded with spaces (`baidu 。com`). Zero-width tricks are
//! already gone after folding. Bare domains count only when their suffix is on the public
//! suffix list, so `file.txt` and `v1.2` are not links. Hosts are reported in ASCII (punycode)
//! together with their registrable domain, which is what allow and deny lists match.

use std::ops::Range;

use rustc_hash::FxHashSet;

use crate::normalize::is_letter_or_digit;

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

/// Disguised dots, longest first.
const DOT_TOKENS: [&str; 8] = ["(dot)", "[dot]", "(.)", "[.]", "{.}", "。", "点", "."];

/// Every link in `text`.
pub fn find_links(text: &str) -> Vec<LinkHit> {
    if !may_contain_link(text) {
        return Vec::new();
    }
    let view = DotView::new(text);
    let chars = &view.chars;
    let mut hits = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let scheme_len = scheme_at(chars, i);
        let host_start = i + scheme_len;
        // An internationalized host is only taken after a scheme, where it cannot be confused
        // with the surrounding CJK text.
        let idn = scheme_len > 0 && chars.get(host_start).is_some_and(|c| !c.0.is_ascii());
        let is_host_char = |c: char| {
            c.is_ascii_alphanumeric() || c == '-' || c == '.' || (idn && is_letter_or_digit(c))
        };
        let starts_host = host_start < chars.len()
            && is_letter_or_digit(chars[host_start].0)
            && (scheme_len > 0 || chars[host_start].0.is_ascii())
            && (scheme_len > 0 || i == 0 || !continues_word(chars[i - 1].0));
        if !starts_host {
            i += 1;
            continue;
        }
        let mut end = host_start;
        while end < chars.len() && is_host_char(chars[end].0) {
            end += 1;
        }
        let raw: String = chars[host_start..end].iter().map(|c| c.0).collect();
        let raw = raw.trim_end_matches(['.', '-']);
        let host_end = host_start + raw.chars().count();
        if let Some((host, domain)) = validate_host(raw, scheme_len > 0) {
            hits.push(LinkHit {
                host,
                domain,
                span: chars[i].1..chars[host_end - 1].2,
            });
            end = skip_url_tail(chars, host_end);
        }
        i = end.max(i + 1);
    }
    hits
}

/// Whether there is a scheme, or a dot (or disguised dot) after a letter or digit of a Latin
/// label, allowing for spaces: a quick test that spares most chat messages the full scan.
fn may_contain_link(text: &str) -> bool {
    if text.contains("://") {
        return true;
    }
    let mut after_label = false;
    for c in text.chars() {
        match c {
            '.' | '。' | '点' | '(' | '[' | '{' if after_label => return true,
            ' ' => {}
            c => after_label = c.is_ascii_alphanumeric(),
        }
    }
    false
}

/// A character that makes the next one part of the same token: `user@host`, `a_b.c`.
fn continues_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '@' | '_' | '-' | '.' | '/' | '\\')
}

/// The length of `http://` or `https://` starting at `i`, or 0.
fn scheme_at(chars: &[(char, usize, usize)], i: usize) -> usize {
    for scheme in ["https://", "http://"] {
        let n = scheme.chars().count();
        if chars.len() >= i + n && chars[i..i + n].iter().map(|c| c.0).eq(scheme.chars()) {
            return n;
        }
    }
    0
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

/// Checks a candidate host and returns it in ASCII with its registrable domain.
fn validate_host(raw: &str, has_scheme: bool) -> Option<(String, String)> {
    if !raw.contains('.') {
        return None;
    }
    let ascii = url::Url::parse(&format!("http://{raw}/"))
        .ok()?
        .host_str()?
        .to_owned();
    let is_ip = ascii.bytes().all(|b| b.is_ascii_digit() || b == b'.') || ascii.starts_with('[');
    if is_ip {
        return has_scheme.then(|| (ascii.clone(), ascii));
    }
    if !has_scheme {
        let suffix = psl::suffix(ascii.as_bytes())?;
        // The host must have a label of its own before a known public suffix.
        if !suffix.is_known() || suffix.as_bytes().len() >= ascii.len() {
            return None;
        }
    }
    let domain = registrable_domain(&ascii);
    Some((ascii, domain))
}

/// The registrable domain of an ASCII host, or the host itself when it has none.
pub fn registrable_domain(host: &str) -> String {
    psl::domain_str(host).unwrap_or(host).to_owned()
}

/// Normalizes a domain written in a rule (`Example.COM`, `*.example.com`,
/// `https://例子.中国/path`) to a lower-case ASCII host.
pub fn normalize_domain(entry: &str) -> Result<String, String> {
    let trimmed = entry.trim();
    let without_scheme = trimmed.split_once("://").map_or(trimmed, |(_, rest)| rest);
    let host = without_scheme
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default()
        .trim_start_matches("*.")
        .trim_end_matches('.');
    let parsed = url::Url::parse(&format!("http://{host}/"))
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .filter(|h| !host.is_empty() && !h.is_empty());
    parsed.ok_or_else(|| format!("`{entry}` is not a domain (write it like example.com)"))
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
    fn new(text: &str) -> DotView {
        let mut chars: Vec<(char, usize, usize)> = Vec::with_capacity(text.len());
        let mut at = 0;
        while at < text.len() {
            if let Some(token) = DOT_TOKENS.iter().find(|t| text[at..].starts_with(**t)) {
                let after = at + token.len();
                let next_label = text[after..].trim_start_matches(' ');
                let left_is_label = chars
                    .iter()
                    .rev()
                    .find(|c| c.0 != ' ')
                    .is_some_and(|c| c.0.is_ascii_alphanumeric());
                let right_is_label = next_label.starts_with(|c: char| c.is_ascii_alphanumeric());
                // A plain dot with a space after but not before ends a sentence (`Hi. Me too`).
                let space_before = chars.last().is_some_and(|c| c.0 == ' ');
                let space_after = next_label.len() < text.len() - after;
                let sentence_end = *token == "." && space_before != space_after;
                if left_is_label && right_is_label && !sentence_end {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::fold;

    fn hosts(text: &str) -> Vec<String> {
        find_links(&fold(text))
            .into_iter()
            .map(|h| h.host)
            .collect()
    }

    #[test]
    fn urls_and_bare_domains() {
        assert_eq!(
            hosts("see https://www.Example.com/a?b=1 now"),
            ["www.example.com"]
        );
        assert_eq!(hosts("加群 t.me/joinchat/abc 哦"), ["t.me"]);
        assert_eq!(hosts("访问example.com了解"), ["example.com"]);
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
    }
}
