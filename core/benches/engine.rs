//! Benchmark of `Engine::evaluate` on a deterministic Chinese and English message stream with
//! 10,000 keywords and every check on, against a naive `contains` loop and a `RegexSet` over
//! the same keywords, in the same run: `evaluate` and the keyword automata take turns over
//! three rounds, and the best pass of each is reported. Also: latency percentiles, keyword precision and recall
//! on the labelled stream, state bytes per tracked member, a 2,000,000-entry blacklist, and
//! compiling the rules of a large WeCom operator (20,000 tagged groups, 100,000 keywords).
//!
//! Run: `cargo bench -p groupguard-core --bench engine` (set `BENCH_MESSAGES` to change the
//! stream length, default 200,000; set `BENCH_ENGINE_ONLY=N` to stop after the evaluate pass,
//! repeated N times with fresh engines, for profiling, and with `BENCH_KIND=clean`, `keyword`,
//! `link` or `phone` the passes after the first judge only messages of that kind;
//! `BENCH_BLACKLIST_ONLY=N` runs the
//! blacklist part alone N times, `BENCH_KEYWORDS_ONLY=N` the engine's keyword automaton and
//! `daachorse`'s by turns, N rounds). `cargo test` runs a small version (unoptimized) that fails below floors
//! set about ten times under what it measures, to catch a regression by an order of
//! magnitude.

// The counting allocator below is unsafe code: GlobalAlloc requires it.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use groupguard_core::compile::CharAutomaton;
use groupguard_core::detect::links::find_links_among;
use groupguard_core::detect::phone::find_phones;
use groupguard_core::engine::{Engine, Live};
use groupguard_core::lists::BlacklistIndex;
use groupguard_core::model::{
    Event, EventId, EventKind, GroupId, GroupRef, Member, MemberRef, Message, MessageKind,
    Platform, UserId,
};
use groupguard_core::normalize::{LinkChars, Normalized, collapse, fold, normalize, sound_mapped};
use groupguard_core::rule::{
    BlacklistEntry, GroupConfig, Keywords, PhoneKind, Rule, RuleSet, Source,
};
use groupguard_core::rulefile;
use groupguard_core::time::Timestamp;
use groupguard_core::verdict::{CheckKind, Outcome, Verdict};

/// Counts bytes on top of the allocator the service runs on (`src/main.rs`), so the figures
/// are the service's.
struct Counting;

static INNER: mimalloc::MiMalloc = mimalloc::MiMalloc;

thread_local! {
    /// Bytes allocated less bytes freed, by this thread: the bench measures on one thread,
    /// and a counter of its own needs no atomic operation, which would make every
    /// allocation dearer than the service's (it counts nothing).
    static ALLOCATED: Cell<isize> = const { Cell::new(0) };
}

fn count(bytes: isize) {
    ALLOCATED.with(|allocated| allocated.set(allocated.get() + bytes));
}

// SAFETY: every call is forwarded unchanged to mimalloc; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        // SAFETY: same layout contract as the caller's.
        unsafe { INNER.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        // SAFETY: `ptr` was allocated by `INNER` with `layout`.
        unsafe { INNER.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize);
        // SAFETY: `ptr` was allocated by `INNER` with `layout`.
        unsafe { INNER.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocated() -> isize {
    ALLOCATED.with(Cell::get)
}

/// splitmix64: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 1000 < percent * 10
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const HANZI: &str = "的一是不了人我在有他这中大来上个国到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定女问力机给等几很业最间新什打便位因重被走电四第门相次东政海口使教西再平真听世气信北少关并内加化由却代军产入先山五太水万市眼体别处总才场师书比住员九笑性通目华报立马命张活难神数件安表原车白应路期叫死常提感金何更反合放做系计或司利受光王果亲界及今京务制解各任至清物台象记边共风战干接它许八特觉望直服毛林题建南度统色字请交爱让认算论百吃义科怎元社术结六功指思非流每青管夫连远资队跟带花快条院变联言权往展该领传近留红治决周保达办运武半候七必城父强步完革深区即求品士转量空甚众技轻程告江语英基派满式李息写呢识极令黄德收脸钱党倒未持音随落切据取取友";

const ENGLISH: [&str; 48] = [
    "the", "order", "price", "please", "thanks", "when", "shipping", "hello", "group", "today",
    "meeting", "update", "product", "customer", "service", "question", "answer", "delivery",
    "team", "report", "morning", "evening", "week", "monday", "friday", "invoice", "payment",
    "refund", "size", "color", "stock", "new", "sale", "store", "online", "help", "support",
    "account", "login", "password", "ticket", "issue", "fixed", "great", "sure", "okay", "see",
    "you",
];

/// What a generated message carries.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Label {
    Clean,
    Keyword,
    Link,
    Phone,
}

fn hanzi() -> Vec<char> {
    HANZI.chars().collect()
}

fn random_word(rng: &mut Rng, chars: &[char], len: usize) -> String {
    (0..len).map(|_| *rng.pick(chars)).collect()
}

/// 80 % Chinese keywords of 3 or 4 characters, 20 % English pseudo-words of 7 to 9 letters.
fn keywords(rng: &mut Rng, n: usize) -> Vec<String> {
    let chars = hanzi();
    let letters: Vec<char> = ('a'..='z').collect();
    let mut out = std::collections::BTreeSet::new();
    while out.len() < n {
        let word = if rng.chance(80) {
            let len = 3 + rng.below(2);
            random_word(rng, &chars, len)
        } else {
            let len = 7 + rng.below(3);
            random_word(rng, &letters, len)
        };
        out.insert(word);
    }
    let mut out: Vec<String> = out.into_iter().collect();
    // Shuffle so the injected keywords are not biased towards one end.
    for i in (1..out.len()).rev() {
        let j = rng.below(i + 1);
        out.swap(i, j);
    }
    out
}

/// Evasions a spammer might use on a keyword.
fn disguise(rng: &mut Rng, keyword: &str) -> String {
    match rng.below(6) {
        0..=2 => keyword.to_owned(),
        3 => keyword
            .chars()
            .map(String::from)
            .collect::<Vec<_>>()
            .join(" "),
        4 => keyword
            .chars()
            .map(String::from)
            .collect::<Vec<_>>()
            .join("\u{200B}"),
        _ => keyword
            .chars()
            .map(|c| match c {
                'a'..='z' => char::from_u32(c as u32 - 'a' as u32 + 0xFF41).unwrap_or(c),
                other => other,
            })
            .collect(),
    }
}

fn clean_text(rng: &mut Rng, chars: &[char]) -> String {
    let tokens = 2 + rng.below(14);
    let mut text = String::new();
    for t in 0..tokens {
        if rng.chance(70) {
            let len = 1 + rng.below(3);
            text.push_str(&random_word(rng, chars, len));
            if rng.chance(15) {
                text.push_str(if rng.chance(50) { "，" } else { "。" });
            }
        } else {
            if t > 0 {
                text.push(' ');
            }
            let word: &&str = rng.pick(&ENGLISH[..]);
            text.push_str(word);
            text.push(' ');
        }
    }
    if rng.chance(2) {
        text.push_str(" https://corp.example.cn/p/123");
    }
    text
}

/// `n` messages, one in twenty carrying a (disguised) keyword, a link or a phone number. A
/// message is labelled a keyword message when one was put in, or when a keyword occurs in its
/// normalized text by chance (random Chinese text holds some of 10,000 short words).
fn stream(rng: &mut Rng, keywords: &[String], n: usize) -> Vec<(Event, Label)> {
    let chars = hanzi();
    let normalized: Vec<String> = keywords.iter().map(|k| normalize(k)).collect();
    let occurs = aho_corasick::AhoCorasick::new(&normalized).expect("automaton");
    let start = Timestamp(1_795_251_600_000);
    (0..n)
        .map(|i| {
            let mut text = clean_text(rng, &chars);
            let label = if rng.chance(5) {
                // Anywhere but against a Latin word: a spelled-out keyword glued to the letters
                // of another word is read as part of that word (see `normalize`).
                let places: Vec<usize> = (0..=text.len())
                    .filter(|&i| text.is_char_boundary(i))
                    .filter(|&i| {
                        let latin = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
                        !latin(text[..i].chars().next_back()) && !latin(text[i..].chars().next())
                    })
                    .collect();
                let at = places[rng.below(places.len())];
                let (label, inject) = match rng.below(10) {
                    0..6 => {
                        let keyword = &keywords[rng.below(keywords.len())];
                        (Label::Keyword, disguise(rng, keyword))
                    }
                    6 | 7 => (Label::Link, format!(" t.me/joinchat{} ", rng.below(1000))),
                    _ => (
                        Label::Phone,
                        format!(
                            " 1{} {:04} {:04} ",
                            38 + rng.below(2),
                            rng.below(10_000),
                            rng.below(10_000)
                        ),
                    ),
                };
                text.insert_str(at, &inject);
                label
            } else {
                Label::Clean
            };
            let label = if occurs.is_match(normalize(&text).as_str()) {
                Label::Keyword
            } else {
                label
            };
            let mut member = Member::new(format!("m{}", rng.below(10_000)));
            member.display_name = Some("bench".to_owned());
            let mut message = Message::text(text);
            if rng.chance(1) {
                message.mentions.push(UserId::new("someone"));
            }
            if rng.chance(1) {
                message.kind = MessageKind::Image;
            }
            let event = Event {
                id: EventId::new(format!("e{i}")),
                at: start.plus(Duration::from_millis(i as u64)),
                platform: Platform::WeCom,
                group: GroupId::new(format!("g{}", rng.below(200))),
                member,
                kind: EventKind::MessagePosted(message),
            };
            (event, label)
        })
        .collect()
}

/// The bench rule's regexes.
const REGEXES: [&str; 3] = [
    r"(年化|收益)\s*\d{2,3}\s*%",
    r"discord\.gg/\w+",
    r"q{2}\s*群\s*\d{5,}",
];

fn rules(keywords: &[String]) -> RuleSet {
    let list = keywords
        .iter()
        .map(|k| format!("{k:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let text = format!(
        r#"
[settings]
home_orgs = {{ wecom = "wwHome" }}

[[rules]]
id = "bench"
keywords = {{ substrings = [{list}] }}
regex = {{ patterns = {REGEXES:?} }}
phone = {{}}
links = {{ mode = "allow_listed_only", allow = ["corp.example.cn"] }}
mini_programs = {{ allow = ["wxShop"] }}
banned_kinds = ["voice", "file"]
flood = {{ messages = 10, per = "10s", max_chars = 2000, max_lines = 30, max_mentions = 10 }}
duplicates = {{ members = 3, groups = 3, window = "60s" }}
invites = {{ only_staff_invite = true }}
blacklist = {{}}
ladder = ["delete+warn", "delete+warn", "delete+timeout:10m", "kick+blacklist"]
"#
    );
    let mut set = rulefile::parse(&text).expect("bench rules parse");
    set.blacklist = (0..100_000)
        .map(|i| blacklist_entry(&format!("troll{i}")))
        .collect();
    set
}

fn blacklist_entry(id: &str) -> BlacklistEntry {
    BlacklistEntry {
        member: MemberRef::new(Platform::WeCom, id),
        owner: None,
        reason: "imported".to_owned(),
        source: Source::Import,
        created_at: Timestamp(0),
        expires_at: None,
    }
}

/// Whether the bench rule matched a keyword.
fn keyword_hit(verdict: &Verdict) -> bool {
    matches!(verdict.outcome("bench"), Some(Outcome::Matched(m)) if m.hits.iter().any(|h| h.check == CheckKind::Keyword))
}

fn per_second(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

fn human(rate: f64) -> String {
    if rate >= 1e6 {
        format!("{:.2} M", rate / 1e6)
    } else {
        format!("{:.1} k", rate / 1e3)
    }
}

fn main() {
    // As the service does (see its `keep_pages_small`): transparent huge pages off.
    #[cfg(target_os = "linux")]
    if let Err(error) = rustix::thread::disable_transparent_huge_pages(true) {
        println!("transparent huge pages stay on: {error}");
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing and wants a quick run.
    let quick = !std::env::args().any(|a| a == "--bench");
    if let Some(runs) = std::env::var("BENCH_BLACKLIST_ONLY")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
    {
        // For profilers and side-by-side runs: the 2,000,000-entry blacklist alone.
        for _ in 0..runs {
            blacklist(2_000_000);
        }
        return;
    }
    if std::env::var_os("BENCH_OPERATOR_ONLY").is_some() {
        // For profilers: compiling the large operator's rules, again and again.
        for _ in 0..5 {
            operator_scale(&mut Rng(0x5EED), 20_000, 100_000);
        }
        return;
    }
    if let Some(n) = std::env::var("BENCH_TRACKED_MEMBERS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        tracked_members(n);
        return;
    }
    let n: usize = std::env::var("BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 5_000 } else { 200_000 });
    let mut rng = Rng(0x5EED);
    let keywords = keywords(&mut rng, 10_000);
    let events = stream(&mut rng, &keywords, n);
    let bytes: usize = events
        .iter()
        .filter_map(|(e, _)| e.text())
        .map(str::len)
        .sum();
    println!(
        "stream: {n} messages, {:.1} bytes on average, 10,000 keywords, every check on",
        bytes as f64 / n as f64
    );
    if let Some(rounds) = std::env::var("BENCH_KEYWORDS_ONLY")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
    {
        keyword_automata(&events, &keywords, rounds);
        return;
    }

    let set = rules(&keywords);
    let t = Instant::now();
    let live = Arc::new(Live::compile(set).expect("bench rules compile"));
    println!(
        "compile (10,000 keywords, 100,000 blacklist entries): {:.0} ms",
        t.elapsed().as_secs_f64() * 1e3
    );

    // Throughput: one pass, no per-call timing.
    let mut engine = Engine::with_handle(Arc::clone(&live));
    let t = Instant::now();
    let mut keyword_hits = Vec::with_capacity(n);
    for (event, _) in &events {
        let verdict = engine.evaluate(event, event.at);
        keyword_hits.push(keyword_hit(&verdict));
        black_box(&verdict);
    }
    let engine_elapsed = t.elapsed();
    let engine_rate = per_second(n, engine_elapsed);
    if let Some(repeat) = std::env::var("BENCH_ENGINE_ONLY")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
    {
        // For profilers: the evaluate pass again, so it outweighs generating the stream.
        println!("evaluate: {} msgs/s", human(engine_rate));
        let kind = std::env::var("BENCH_KIND").ok().map(|k| match k.as_str() {
            "clean" => Label::Clean,
            "keyword" => Label::Keyword,
            "link" => Label::Link,
            "phone" => Label::Phone,
            other => panic!("BENCH_KIND {other:?}: clean, keyword, link or phone"),
        });
        let judged: Vec<&Event> = events
            .iter()
            .filter(|(_, label)| kind.is_none_or(|k| k == *label))
            .map(|(event, _)| event)
            .collect();
        for _ in 1..repeat {
            let mut engine = Engine::with_handle(Arc::clone(&live));
            let t = Instant::now();
            for event in &judged {
                black_box(engine.evaluate(event, event.at));
            }
            println!(
                "evaluate: {} msgs/s ({} messages)",
                human(per_second(judged.len(), t.elapsed())),
                judged.len()
            );
        }
        return;
    }

    breakdown(&events, &keywords);

    // The same rules with the keyword list matching homophones (pinyin of every message).
    let mut by_sound = rules(&keywords);
    by_sound.rules[0]
        .keywords
        .as_mut()
        .expect("the bench rule has keywords")
        .homophones = true;
    let mut engine = Engine::new(Live::compile(by_sound).expect("bench rules compile"));
    let t = Instant::now();
    let mut by_sound_hits = 0usize;
    for (event, _) in &events {
        let verdict = engine.evaluate(event, event.at);
        by_sound_hits += usize::from(keyword_hit(&verdict));
    }
    println!(
        "evaluate with the keyword list matching homophones: {} msgs/s; keyword matches {} (as written: {})",
        human(per_second(n, t.elapsed())),
        by_sound_hits,
        keyword_hits.iter().filter(|&&hit| hit).count()
    );

    // Latency: a second engine, each call timed.
    let mut engine = Engine::with_handle(Arc::clone(&live));
    let mut latencies: Vec<u64> = events
        .iter()
        .map(|(event, _)| {
            let t = Instant::now();
            black_box(engine.evaluate(event, event.at));
            t.elapsed().as_nanos() as u64
        })
        .collect();
    // A message that breaks a rule costs more (evidence traced back to the raw text, the
    // warning, the violation record): each kind of message on its own.
    let by_label: Vec<String> = [
        (Label::Clean, "clean"),
        (Label::Keyword, "keyword"),
        (Label::Link, "link"),
        (Label::Phone, "phone"),
    ]
    .iter()
    .map(|&(wanted, name)| {
        let mut of_kind: Vec<u64> = latencies
            .iter()
            .zip(&events)
            .filter(|(_, (_, label))| *label == wanted)
            .map(|(&ns, _)| ns)
            .collect();
        if of_kind.is_empty() {
            return format!("{name} none");
        }
        of_kind.sort_unstable();
        let at = |p: f64| of_kind[((of_kind.len() as f64 * p) as usize).min(of_kind.len() - 1)];
        format!("{name} {} / {}", at(0.5), at(0.99))
    })
    .collect();
    // Where the slowest calls were: the same places run after run point at the engine (a
    // table growing, a sweep), different ones at the machine.
    let mut slowest: Vec<(u64, usize)> = latencies.iter().copied().zip(0..).collect();
    slowest.sort_unstable_by(|a, b| b.cmp(a));
    let slowest: Vec<String> = slowest
        .iter()
        .take(5)
        .map(|(ns, i)| format!("#{i} {:.0} µs", *ns as f64 / 1e3))
        .collect();
    latencies.sort_unstable();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    let machine = machine_alone(latencies.len());

    // Keyword precision and recall on the labelled stream.
    let (mut tp, mut fp, mut fn_) = (0u32, 0u32, 0u32);
    for ((_ev, label), hit) in events.iter().zip(&keyword_hits) {
        match (*label == Label::Keyword, *hit) {
            (true, true) => tp += 1,
            (false, true) => fp += 1,
            (true, false) => {
                fn_ += 1;
                if std::env::var_os("BENCH_SHOW_MISSES").is_some() {
                    println!("missed: {:?}", _ev.text());
                }
            }
            (false, false) => {}
        }
    }

    // Baselines on the same normalized texts: keyword matching only.
    let KeywordSearch {
        texts: normalized,
        patterns,
        own,
        daac,
    } = KeywordSearch::of(&events, &keywords);
    let automaton = aho_corasick::AhoCorasick::new(&patterns).expect("automaton");
    println!(
        "keyword automaton: {} KB as in the engine, {} KB as daachorse's",
        own.heap_bytes() / 1000,
        daac.heap_bytes() / 1000
    );
    // One pass of a baseline over the first `n` texts.
    let pass = |n: usize, matches: &dyn Fn(&str) -> bool| {
        let t = Instant::now();
        black_box(normalized[..n].iter().filter(|t| matches(t)).count());
        per_second(n, t.elapsed())
    };
    let baseline_pass = |matches: &dyn Fn(&str) -> bool| pass(normalized.len(), matches);
    let engine_pass = || {
        let mut engine = Engine::with_handle(Arc::clone(&live));
        let t = Instant::now();
        for (event, _) in &events {
            black_box(engine.evaluate(event, event.at));
        }
        per_second(n, t.elapsed())
    };
    // Side by side: `evaluate` and the automata take turns, so that a change in what the
    // machine's neighbours do falls on both; the best pass of each is reported, and the
    // ratio of each round.
    let (mut own_rate, mut daac_rate, mut automaton_rate) = (0f64, 0f64, 0f64);
    let mut engine_rate = engine_rate;
    let mut round_ratios = Vec::new();
    for _ in 0..if quick { 1 } else { 3 } {
        let engine_now = engine_pass();
        // Every match, as the engine searches.
        let own_now = baseline_pass(&|t| {
            let mut found = false;
            own.find_overlapping(t, |_, _, _| found = true);
            found
        });
        let daac_now = baseline_pass(&|t| daac.find_overlapping_iter(t).count() > 0);
        let automaton_now = baseline_pass(&|t| automaton.is_match(t));
        round_ratios.push(format!("{:.0} %", engine_now / automaton_now * 100.0));
        engine_rate = engine_rate.max(engine_now);
        own_rate = own_rate.max(own_now);
        daac_rate = daac_rate.max(daac_now);
        automaton_rate = automaton_rate.max(automaton_now);
    }

    // The slow baselines run more than once as well and report their best pass, so that
    // no baseline is measured cold while the engine is measured warm.
    let passes = if quick { 1 } else { 3 };
    let best_of = |n: usize, matches: &dyn Fn(&str) -> bool| {
        (0..passes).map(|_| pass(n, matches)).fold(0f64, f64::max)
    };
    let naive_n = normalized.len().min(if quick { 500 } else { 5_000 });
    let naive_rate = best_of(naive_n, &|t| {
        patterns.iter().any(|k| t.contains(k.as_str()))
    });

    // As one would build it: the compile limit raised so that 10,000 patterns fit, the
    // lazy DFA's cache at its default size. That cache cannot hold the states 10,000
    // keywords need, so it is cleared again and again and the set never warms up.
    let escaped: Vec<String> = patterns.iter().map(|k| regex::escape(k)).collect();
    let regex_set = |dfa_cache: Option<usize>| {
        let mut builder = regex::RegexSetBuilder::new(&escaped);
        builder.size_limit(1 << 30);
        if let Some(bytes) = dfa_cache {
            builder.dfa_size_limit(bytes);
        }
        builder.build().expect("regex set")
    };
    let t = Instant::now();
    let set = regex_set(None);
    let regexset_build = t.elapsed();
    let regexset_n = normalized.len().min(if quick { 500 } else { 20_000 });
    let regexset_rate = best_of(regexset_n, &|t| set.is_match(t));
    // With a cache large enough for every state the stream reaches, the lazy DFA becomes
    // fast once built: reported after one pass over the whole stream has built it.
    let roomy_set = regex_set(Some(1 << 30));
    let warm_up = Instant::now();
    black_box(normalized.iter().filter(|t| roomy_set.is_match(t)).count());
    let warm_up = warm_up.elapsed();
    let roomy_rate = best_of(normalized.len(), &|t| roomy_set.is_match(t));

    println!();
    println!(
        "`evaluate` against the `aho-corasick` baseline, round by round: {}",
        round_ratios.join(", ")
    );
    println!("| what | msgs/s (1 core, best pass) | vs naive loop | vs RegexSet |");
    println!("|---|---|---|---|");
    println!(
        "| `Engine::evaluate`, every check (normalize, keywords, regex, phone, links, kinds, flood, duplicates, blacklist, ladder) | {} | {:.0}× | {:.0}× |",
        human(engine_rate),
        engine_rate / naive_rate,
        engine_rate / regexset_rate
    );
    for (what, rate) in [
        (
            "keywords only: the engine's character-wise automaton, every match",
            own_rate,
        ),
        (
            "keywords only: `daachorse` character-wise automaton, every match",
            daac_rate,
        ),
        (
            "keywords only: `aho-corasick` crate (default kind) `is_match`",
            automaton_rate,
        ),
    ] {
        println!(
            "| {what} | {} | {:.0}× | {:.0}× |",
            human(rate),
            rate / naive_rate,
            rate / regexset_rate
        );
    }
    println!(
        "| keywords only: naive `contains` loop over 10,000 keywords ({naive_n} msgs) | {} | 1× | |",
        human(naive_rate)
    );
    println!(
        "| keywords only: `RegexSet::is_match`, default lazy-DFA cache, built in {:.0} ms ({regexset_n} msgs) | {} | | 1× |",
        regexset_build.as_secs_f64() * 1e3,
        human(regexset_rate)
    );
    println!(
        "| keywords only: `RegexSet::is_match`, 1 GiB lazy-DFA cache, after a warm-up pass over all {} msgs that took {:.1} s | {} | {:.0}× | {:.0}× |",
        normalized.len(),
        warm_up.as_secs_f64(),
        human(roomy_rate),
        roomy_rate / naive_rate,
        roomy_rate / regexset_rate
    );
    println!();
    println!(
        "evaluate latency: p50 {} ns, p90 {} ns, p99 {} ns, max {} ns (timed per call, ~25 ns of timer included)",
        pct(0.50),
        pct(0.90),
        pct(0.99),
        latencies[latencies.len() - 1]
    );
    println!(
        "evaluate latency by message, p50 / p99 ns: {}",
        by_label.join(", ")
    );
    println!("slowest calls: {}", slowest.join(", "));
    println!(
        "the machine alone, a loop of 1,000 multiply-adds that touches no memory, timed as often: p50 {} ns, p99 {} ns, max {} ns",
        machine[0], machine[1], machine[2]
    );
    let precision = f64::from(tp) / f64::from((tp + fp).max(1));
    let recall = f64::from(tp) / f64::from((tp + fn_).max(1));
    println!(
        "keyword check on the labelled stream: precision {precision:.3}, recall {recall:.3} (TP {tp}, FP {fp}, FN {fn_})"
    );
    if quick {
        // Unoptimized, a 2-core machine running other tests: ~43 k msgs/s.
        assert!(
            engine_rate >= SMOKE_MIN_RATE,
            "evaluate fell to {} msgs/s",
            human(engine_rate)
        );
        assert!(
            precision >= 0.99 && recall >= 0.99,
            "keyword precision {precision:.3}, recall {recall:.3}"
        );
    }
    evasion_quality(&mut rng, if quick { 2_000 } else { 20_000 });
    let stats = engine.state().stats();
    println!(
        "state after the stream: {} flood windows, {} ladder counters, {} duplicate texts",
        stats.flood_windows, stats.ladder_counters, stats.duplicate_texts
    );

    state_memory(if quick { 10_000 } else { 1_000_000 });
    let child = std::process::Command::new(std::env::current_exe().expect("the bench binary"))
        .args(std::env::args().skip(1))
        .env(
            "BENCH_TRACKED_MEMBERS",
            if quick { "10000" } else { "1000000" },
        )
        .status()
        .expect("the bench runs itself");
    assert!(child.success(), "tracked members run");
    blacklist(if quick { 20_000 } else { 2_000_000 });
    if quick {
        // Unoptimized: ~0.1 s.
        let compiled = operator_scale(&mut rng, 2_000, 10_000);
        assert!(
            compiled < Duration::from_secs(2),
            "the operator's rules took {compiled:?} to compile"
        );
    } else {
        operator_scale(&mut rng, 20_000, 100_000);
    }
}

/// The p50, p99 and max of `calls` timed runs of a fixed loop that reads no memory: what the
/// machine itself (interrupts, the hypervisor) adds to a timed call, apart from any engine.
fn machine_alone(calls: usize) -> [u64; 3] {
    let mut times: Vec<u64> = (0..calls as u64)
        .map(|seed| {
            let t = Instant::now();
            let mut x = seed;
            for k in 0..1_000 {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(k);
            }
            black_box(x);
            t.elapsed().as_nanos() as u64
        })
        .collect();
    times.sort_unstable();
    let at = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    [at(0.5), at(0.99), times[times.len() - 1]]
}

/// The smoke run's floor for `evaluate`, in messages a second.
const SMOKE_MIN_RATE: f64 = 4_000.0;

/// A large WeCom operator's rules compiled: `groups` groups tagged by region and kind, one
/// rule with `keywords` keywords scoped by tags, 50 rules scoped to 400 explicit groups each
/// (fewer when there are fewer groups), and one rule naming every group.
fn operator_scale(rng: &mut Rng, groups: usize, keywords_n: usize) -> Duration {
    let group_ref = |i: usize| GroupRef::new(Platform::WeCom, format!("wrGroup{i:05}"));
    let mut set = RuleSet {
        groups: (0..groups)
            .map(|i| {
                let mut g = GroupConfig::new(group_ref(i));
                g.tags = vec![
                    format!("region{}", i % 20),
                    if i % 2 == 0 { "vip" } else { "retail" }.to_owned(),
                ];
                g
            })
            .collect(),
        ..RuleSet::default()
    };
    let mut words = Rule::new("words");
    words.scope.tags = vec!["retail".into(), "vip".into()];
    words.keywords = Some(Keywords {
        substrings: keywords(rng, keywords_n),
        ..Default::default()
    });
    set.rules.push(words);
    let per_rule = (groups / 50).min(400);
    for r in 0..50 {
        let mut rule = Rule::new(format!("explicit{r}"));
        rule.scope.groups = (0..per_rule).map(|j| group_ref(r * per_rule + j)).collect();
        rule.phone = Some(Default::default());
        set.rules.push(rule);
    }
    let mut everywhere = Rule::new("every-group-by-name");
    everywhere.scope.groups = (0..groups).map(group_ref).collect();
    everywhere.phone = Some(Default::default());
    set.rules.push(everywhere);
    let t = Instant::now();
    let live = Live::compile(set).expect("the operator's rules compile");
    let compiled = t.elapsed();
    black_box(live);
    println!(
        "operator scale: {groups} tagged groups, {keywords_n} keywords scoped by tags, 50 rules \
         of {per_rule} explicit groups and one naming all {groups}: compiled in {:.0} ms",
        compiled.as_secs_f64() * 1e3
    );
    compiled
}

/// When the state measurements' messages are sent.
const STATE_START: Timestamp = Timestamp(1_795_251_600_000);

/// An engine running the one rule in `rule` (TOML).
fn state_engine(rule: &str) -> Engine {
    let set = rulefile::parse(rule).expect("state rule");
    Engine::new(Live::compile(set).expect("state rule compiles"))
}

/// Member `m{i}` posts `text` in one group.
fn member_posts(i: usize, text: String) -> Event {
    Event {
        id: EventId::new("e"),
        at: STATE_START,
        platform: Platform::Discord,
        group: GroupId::new("g"),
        member: Member::new(format!("m{i}")),
        kind: EventKind::MessagePosted(Message::text(text)),
    }
}

/// Bytes of engine state per tracked item, measured with the counting allocator: `n` members
/// each send one message (flood windows, duplicate texts) or break a rule once (ladders), and
/// `n` members two messages each (flood windows of more than one message).
fn state_memory(n: usize) {
    let per_item_posting = |posts: usize,
                            rule: &str,
                            text: &dyn Fn(usize) -> String,
                            count: &dyn Fn(&Engine) -> usize| {
        // All the engine allocates counts, its fixed tables and buffers as well.
        let before = allocated();
        let mut engine = state_engine(rule);
        let event = |i: usize| member_posts(i, text(i));
        for i in 0..n {
            for _ in 0..posts {
                engine.evaluate(&event(i), STATE_START);
            }
        }
        let items = count(&engine);
        ((allocated() - before) as f64 / items as f64, items)
    };
    let per_item =
        |rule: &str, text: &dyn Fn(usize) -> String, count: &dyn Fn(&Engine) -> usize| {
            per_item_posting(1, rule, text, count)
        };
    let flood_rule = "[[rules]]\nid = \"flood\"\nflood = { messages = 10, per = \"10s\" }\n";
    let windows = |e: &Engine| e.state().stats().flood_windows;
    let (flood, count) = per_item(flood_rule, &|_| "hi".to_owned(), &windows);
    let (flood_twice, _) = per_item_posting(2, flood_rule, &|_| "hi".to_owned(), &windows);
    let (duplicate, texts) = per_item(
        "[[rules]]\nid = \"dup\"\nduplicates = { members = 3, window = \"60s\" }\n",
        &|i| format!("limited offer number {i}"),
        &|e| e.state().stats().duplicate_texts,
    );
    let (ladder, counters) = per_item(
        "[[rules]]\nid = \"ads\"\nkeywords = { substrings = [\"spam\"] }\n",
        &|_| "spam".to_owned(),
        &|e| e.state().stats().ladder_counters,
    );
    println!(
        "state bytes per tracked item: flood window {flood:.0} ({count} windows, limit 10 messages; {flood_twice:.0} of two messages each), \
         duplicate text {duplicate:.0} ({texts} texts), ladder counter {ladder:.0} ({counters} members, one violation)"
    );
}

/// Members who each posted and broke a rule once (a flood window and a ladder counter each),
/// in a process of their own so resident memory starts clean: run as a child of the bench.
fn tracked_members(n: usize) {
    let rule = "[[rules]]\nid = \"ads\"\nkeywords = { substrings = [\"spam\"] }\nflood = { messages = 10, per = \"10s\" }\n";
    let mut engine = state_engine(rule);
    let start = STATE_START;
    let event = |i: usize| member_posts(i, "spam".to_owned());
    engine.evaluate(&event(0), start);
    let (rss_before, before) = (resident_bytes(), allocated());
    let mut slowest = (Duration::ZERO, 0);
    for i in 1..=n {
        let event = event(i);
        let t = Instant::now();
        black_box(engine.evaluate(&event, start));
        slowest = slowest.max((t.elapsed(), i));
    }
    let stats = engine.state().stats();
    assert!(stats.flood_windows > n && stats.ladder_counters > n);
    let (allocated_now, resident_now) = (allocated(), resident_bytes());
    let machine = machine_alone(n);
    println!(
        "{n} tracked members (a flood window and a ladder counter each): {:.0} MiB allocated, resident memory grew by {:.0} MiB to {:.0} MiB for the whole process; the slowest call as they were added {:.2} ms (member #{}; the machine alone, timed as often: {:.2} ms)",
        (allocated_now - before) as f64 / 1_048_576.0,
        resident_now.saturating_sub(rss_before) as f64 / 1_048_576.0,
        resident_now as f64 / 1_048_576.0,
        slowest.0.as_secs_f64() * 1e3,
        slowest.1,
        machine[2] as f64 / 1e6,
    );
    // A rule change that raises the flood limit: every window needs room for more times.
    let raised = rulefile::parse(&rule.replace("messages = 10", "messages = 20")).expect("rule");
    engine
        .handle()
        .replace(Live::compile(raised).expect("rule compiles"));
    let (before, calls) = (allocated(), n / 10);
    let (mut slowest, mut most_allocated) = (Duration::ZERO, 0);
    let later = start.plus(Duration::from_secs(1));
    for i in 1..=calls {
        let event = event(i);
        let t = Instant::now();
        black_box(engine.evaluate(&event, later));
        slowest = slowest.max(t.elapsed());
        most_allocated = most_allocated.max(allocated() - before);
    }
    println!(
        "then a rule change raising the flood limit from 10 to 20 messages: the slowest of the next {calls} calls {:.2} ms, at most {:.0} MiB allocated on top of the state",
        slowest.as_secs_f64() * 1e3,
        most_allocated as f64 / 1_048_576.0,
    );
}

/// The process's resident memory, from `/proc` (0 where there is none).
fn resident_bytes() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        })
        .unwrap_or(0)
}

/// Build time, bytes per entry and lookup time of a large org-wide blacklist.
fn blacklist(entries: usize) {
    let list: Vec<_> = (0..entries)
        .map(|i| blacklist_entry(&format!("u{i}")))
        .collect();
    let before = allocated();
    let t = Instant::now();
    let index = BlacklistIndex::of_entries(&list);
    let build = t.elapsed();
    let after = allocated();
    drop(list);
    let lookups = 500_000usize;
    let probes = |prefix: &str| -> Vec<MemberRef> {
        (0..lookups)
            .map(|i| MemberRef::new(Platform::WeCom, format!("{prefix}{}", (i * 7919) % entries)))
            .collect()
    };
    let (present, absent) = (probes("u"), probes("absent"));
    let time = |probes: &[MemberRef]| {
        let t = Instant::now();
        let found = probes
            .iter()
            .filter(|m| index.entry(m, None).is_some())
            .count();
        (t.elapsed().as_nanos() as f64 / lookups as f64, found)
    };
    // Hits and misses take turns over five rounds, so that what the machine's neighbours do
    // falls on both; the median round of each is reported, with the range.
    let (mut hit_ns, mut miss_ns) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let (hit, hits) = time(&present);
        let (miss, false_hits) = time(&absent);
        assert_eq!((hits, false_hits), (lookups, 0));
        hit_ns.push(hit);
        miss_ns.push(miss);
    }
    let median_and_range = |ns: &mut Vec<f64>| {
        ns.sort_by(f64::total_cmp);
        format!(
            "{:.0} ns ({:.0}–{:.0})",
            ns[ns.len() / 2],
            ns[0],
            ns[ns.len() - 1]
        )
    };
    println!(
        "blacklist: {} entries, compiled in {:.0} ms, {:.1} bytes per entry in memory, lookup incl. hashing the id, median of five rounds: {} (hit), {} (miss)",
        index.len(),
        build.as_secs_f64() * 1e3,
        (after - before) as f64 / entries as f64,
        median_and_range(&mut hit_ns),
        median_and_range(&mut miss_ns),
    );
}

/// Keywords with separators inside (English phrases, domains) and look-alike letters: recall
/// on messages that carry one, spelled as a spammer would, and precision on the rest.
fn evasion_quality(rng: &mut Rng, n: usize) {
    let letters: Vec<char> = ('a'..='z').collect();
    let phrases: Vec<String> = (0..300)
        .map(|i| {
            let (a_len, b_len) = (4 + rng.below(3), 4 + rng.below(3));
            let a = random_word(rng, &letters, a_len);
            let b = random_word(rng, &letters, b_len);
            if i % 3 == 0 {
                format!("{a}{}.example", rng.below(1000))
            } else {
                format!("{a} {b}")
            }
        })
        .collect();
    let quoted: Vec<String> = phrases.iter().map(|p| format!("\"{p}\"")).collect();
    let set = rulefile::parse(&format!(
        "[[rules]]\nid = \"phrases\"\nkeywords = {{ substrings = [{}] }}\n",
        quoted.join(", ")
    ))
    .expect("phrase rules parse");
    let mut engine = Engine::new(Live::compile(set).expect("phrase rules compile"));
    let spell = |rng: &mut Rng, phrase: &str| -> String {
        let letters_only: String = phrase
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        let joined = |sep: &str| {
            letters_only
                .chars()
                .map(String::from)
                .collect::<Vec<_>>()
                .join(sep)
        };
        match rng.below(7) {
            0 => phrase.to_owned(),
            1 => joined(" "),
            2 => joined("."),
            3 => phrase.replace([' ', '.'], "-").to_uppercase(),
            4 => letters_only.clone(),
            5 => phrase.replacen('a', "а", 1).replacen('o', "о", 1),
            _ => joined("・"),
        }
    };
    let chars = hanzi();
    let (mut tp, mut fp, mut fn_) = (0u32, 0u32, 0u32);
    let start = Timestamp(1_795_251_600_000);
    for i in 0..n {
        let mut text = clean_text(rng, &chars);
        let carries = rng.chance(10);
        if carries {
            let phrase = rng.pick(&phrases[..]).clone();
            text.push(' ');
            text.push_str(&spell(rng, &phrase));
            text.push(' ');
        }
        let event = Event {
            id: EventId::new(format!("q{i}")),
            at: start.plus(Duration::from_secs(i as u64)),
            platform: Platform::WeCom,
            group: GroupId::new("q"),
            member: Member::new(format!("q{}", rng.below(1000))),
            kind: EventKind::MessagePosted(Message::text(text)),
        };
        let hit = !engine.evaluate(&event, event.at).violations.is_empty();
        match (carries, hit) {
            (true, true) => tp += 1,
            (false, true) => fp += 1,
            (true, false) => fn_ += 1,
            (false, false) => {}
        }
    }
    println!(
        "phrase and domain keywords, spelled out, dashed, joined, with look-alikes: precision {:.3}, recall {:.3} (TP {tp}, FP {fp}, FN {fn_})",
        f64::from(tp) / f64::from((tp + fp).max(1)),
        f64::from(tp) / f64::from((tp + fn_).max(1))
    );
}

/// The stream's normalized texts, the normalized keywords and two automata over them: the
/// engine's and `daachorse`'s.
struct KeywordSearch {
    texts: Vec<String>,
    patterns: Vec<String>,
    own: CharAutomaton,
    daac: daachorse::CharwiseDoubleArrayAhoCorasick<u32>,
}

impl KeywordSearch {
    fn of(events: &[(Event, Label)], keywords: &[String]) -> KeywordSearch {
        let texts = events
            .iter()
            .map(|(e, _)| normalize(e.text().unwrap_or_default()))
            .collect();
        let patterns: Vec<String> = keywords.iter().map(|k| normalize(k)).collect();
        let own =
            CharAutomaton::build(patterns.iter().map(String::as_str).zip(0..)).expect("automaton");
        let daac = daachorse::CharwiseDoubleArrayAhoCorasick::new(&patterns).expect("automaton");
        KeywordSearch {
            texts,
            patterns,
            own,
            daac,
        }
    }
}

/// The engine's keyword automaton and `daachorse`'s by turns over the stream's collapsed
/// texts, every match of each: for side-by-side runs of the search alone.
fn keyword_automata(events: &[(Event, Label)], keywords: &[String], rounds: u32) {
    let KeywordSearch {
        texts, own, daac, ..
    } = KeywordSearch::of(events, keywords);
    // Apart, so that a profiler tells them apart.
    #[inline(never)]
    fn own_pass(own: &CharAutomaton, texts: &[String]) -> usize {
        let mut matches = 0;
        for text in texts {
            own.find_overlapping(text, |_, _, _| matches += 1);
        }
        matches
    }
    #[inline(never)]
    fn daachorse_pass(
        daac: &daachorse::CharwiseDoubleArrayAhoCorasick<u32>,
        texts: &[String],
    ) -> usize {
        texts
            .iter()
            .map(|t| daac.find_overlapping_iter(t).count())
            .sum()
    }
    for _ in 0..rounds {
        let t = Instant::now();
        let own_matches = own_pass(&own, &texts);
        let own_rate = per_second(texts.len(), t.elapsed());
        let t = Instant::now();
        let daac_matches = daachorse_pass(&daac, &texts);
        let daac_rate = per_second(texts.len(), t.elapsed());
        assert_eq!(own_matches, daac_matches);
        println!(
            "keywords, every match: the engine's automaton {}, daachorse {} msgs/s",
            human(own_rate),
            human(daac_rate)
        );
    }
}

/// Time per message of each text stage `evaluate` runs, measured alone on the same stream.
fn breakdown(events: &[(Event, Label)], keywords: &[String]) {
    let texts: Vec<&str> = events.iter().filter_map(|(e, _)| e.text()).collect();
    let ns = |elapsed: Duration| elapsed.as_nanos() as f64 / texts.len() as f64;
    // As the engine does it: both stages in one pass, into buffers reused between messages.
    let mut normalized = Normalized::default();
    let t = Instant::now();
    for text in &texts {
        normalized.of(text);
        black_box(&normalized);
    }
    let normalize_ns = ns(t.elapsed());
    let folded: Vec<String> = texts.iter().map(|t| fold(t)).collect();
    let collapsed: Vec<String> = folded.iter().map(|t| collapse(t)).collect();
    let patterns: Vec<String> = keywords.iter().map(|k| normalize(k)).collect();
    // The time to search every text for every pattern with one automaton.
    let search = |patterns: &[String], texts: &[String]| {
        let automaton =
            CharAutomaton::build(patterns.iter().map(String::as_str).zip(0..)).expect("automaton");
        let t = Instant::now();
        let mut matches = 0usize;
        for text in texts {
            automaton.find_overlapping(text, |_, _, _| matches += 1);
        }
        black_box(matches);
        ns(t.elapsed())
    };
    let keywords_ns = search(&patterns, &collapsed);
    // The bench rule's patterns as a case-insensitive `RegexSet`. The engine runs them with
    // capital ASCII letters taken out, which folded text never has, and is faster.
    let regexes = regex::RegexSetBuilder::new(REGEXES)
        .case_insensitive(true)
        .build()
        .expect("bench patterns compile");
    let t = Instant::now();
    let regex_hits = folded.iter().filter(|t| regexes.is_match(t)).count();
    let regex_ns = ns(t.elapsed());
    black_box(regex_hits);
    // With the link characters folding noted, as the engine searches.
    let noted: Vec<LinkChars> = folded.iter().map(|t| LinkChars::in_text(t)).collect();
    let t = Instant::now();
    let links: usize = folded
        .iter()
        .zip(&noted)
        .map(|(t, &chars)| find_links_among(t, chars).len())
        .sum();
    let links_ns = ns(t.elapsed());
    black_box(links);
    let kinds = [
        PhoneKind::Mobile,
        PhoneKind::Landline,
        PhoneKind::International,
    ];
    let t = Instant::now();
    let phones: usize = folded.iter().map(|t| find_phones(t, &kinds).len()).sum();
    let phones_ns = ns(t.elapsed());
    black_box(phones);
    let t = Instant::now();
    let sounds: Vec<String> = collapsed.iter().map(|t| sound_mapped(t).text).collect();
    let sound_ns = ns(t.elapsed());
    let mut sound_patterns: Vec<String> = patterns.iter().map(|k| sound_mapped(k).text).collect();
    // Keywords of the same sound share a pattern.
    sound_patterns.sort_unstable();
    sound_patterns.dedup();
    let sound_keywords_ns = search(&sound_patterns, &sounds);
    println!(
        "text stages alone, ns per message: fold and collapse {normalize_ns:.0}, keywords {keywords_ns:.0}, regexes (case-insensitive set) {regex_ns:.0}, links {links_ns:.0}, phones {phones_ns:.0}; \
         for homophones, sound {sound_ns:.0}, keywords in it {sound_keywords_ns:.0}"
    );
}
