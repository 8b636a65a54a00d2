//! `groupguard simulate`: replays a chat log and reports what the rules would do.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::process::ExitCode;

use anyhow::Context as _;
use groupguard_core::engine::Engine;
use groupguard_core::model::{Event, EventKind};
use groupguard_core::verdict::{Outcome, Verdict};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::{Format, SimulateArgs, load_rules};

/// What a replay found.
#[derive(Debug, Default, Serialize)]
struct Summary {
    events: u64,
    events_by_type: BTreeMap<&'static str, u64>,
    events_with_violations: u64,
    violations: u64,
    violations_by_rule: BTreeMap<String, u64>,
    violations_by_check: BTreeMap<String, u64>,
    violations_by_group: BTreeMap<String, u64>,
    /// Mode (`enforce`, `shadow`) → action (`warn`, `kick`, …) → count.
    actions: BTreeMap<String, BTreeMap<&'static str, u64>>,
    malformed_lines: u64,
}

impl Summary {
    fn add(&mut self, event: &Event, verdict: &Verdict) {
        self.events += 1;
        *self.events_by_type.entry(event.kind.name()).or_default() += 1;
        if !verdict.violations.is_empty() {
            self.events_with_violations += 1;
        }
        let group = format!("{}:{}", verdict.platform, verdict.group);
        for record in &verdict.violations {
            self.violations += 1;
            *self
                .violations_by_rule
                .entry(record.rule.to_string())
                .or_default() += 1;
            *self
                .violations_by_check
                .entry(record.check.to_string())
                .or_default() += 1;
            *self.violations_by_group.entry(group.clone()).or_default() += 1;
        }
        for planned in &verdict.actions {
            *self
                .actions
                .entry(planned.mode.to_string())
                .or_default()
                .entry(planned.action.name())
                .or_default() += 1;
        }
    }
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum JsonLine<'a> {
    Decision(&'a Verdict),
    Summary(&'a Summary),
}

pub fn run(args: &SimulateArgs) -> anyhow::Result<ExitCode> {
    let rules = load_rules(&args.rules)?;
    let file = File::open(&args.events)
        .with_context(|| format!("cannot read chat log {}", args.events.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let progress = ProgressBar::new(size).with_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut engine = Engine::new(rules);
    let mut summary = Summary::default();
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let log = args.events.display();
    for (index, line) in BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("cannot read {log} at line {}", index + 1))?;
        progress.inc(line.len() as u64 + 1);
        if line.trim().is_empty() {
            continue;
        }
        let event: Event = match serde_json::from_str(&line) {
            Ok(event) => event,
            Err(e) => {
                progress.suspend(|| eprintln!("{log}:{}: skipped: {e}", index + 1));
                summary.malformed_lines += 1;
                continue;
            }
        };
        let verdict = engine.evaluate(&event, event.at);
        summary.add(&event, &verdict);
        if args.all || !verdict.violations.is_empty() {
            match args.format {
                Format::Json => {
                    serde_json::to_writer(&mut out, &JsonLine::Decision(&verdict))?;
                    writeln!(out)?;
                }
                Format::Table => write_decision(&mut out, &event, &verdict, args.all)?,
            }
        }
    }
    progress.finish_and_clear();
    match args.format {
        Format::Json => {
            serde_json::to_writer(&mut out, &JsonLine::Summary(&summary))?;
            writeln!(out)?;
        }
        Format::Table => write_summary(&mut out, &summary)?,
    }
    out.flush()?;
    Ok(if summary.malformed_lines == 0 {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "{log}: {} malformed line(s) skipped",
            summary.malformed_lines
        );
        ExitCode::FAILURE
    })
}

fn write_decision(
    out: &mut impl Write,
    event: &Event,
    verdict: &Verdict,
    all: bool,
) -> std::io::Result<()> {
    writeln!(
        out,
        "{}  {}:{}  {} ({})  {}",
        event.at,
        event.platform,
        event.group,
        event.member.label(),
        event.member.id,
        event
            .text()
            .map(excerpt)
            .unwrap_or_else(|| describe(&event.kind))
    )?;
    for (rule, result) in verdict.outcomes.iter() {
        match result {
            Outcome::Matched(m) => {
                let hits: Vec<String> = m
                    .hits
                    .iter()
                    .map(|h| format!("{} {}", h.check, h.evidence))
                    .collect();
                let actions: Vec<String> = verdict
                    .actions
                    .iter()
                    .filter(|a| a.rule == *rule)
                    .map(|a| format!("{}[{}]", a.action.name(), a.mode))
                    .collect();
                writeln!(
                    out,
                    "    {}  MATCHED  {}  violation {} -> {}",
                    rule,
                    hits.join("; "),
                    m.count_after,
                    if actions.is_empty() {
                        "no action".to_owned()
                    } else {
                        actions.join(" ")
                    }
                )?;
                for note in &m.notes {
                    writeln!(out, "        note: {note}")?;
                }
            }
            Outcome::NotMatched if all => writeln!(out, "    {rule}  not matched")?,
            Outcome::Skipped(reason) if all => writeln!(out, "    {rule}  skipped: {reason}")?,
            _ => {}
        }
    }
    Ok(())
}

fn describe(kind: &EventKind) -> String {
    match kind {
        EventKind::MemberJoined {
            inviter: Some(inviter),
            scene,
        } => {
            format!("joined ({scene:?}, invited by {})", inviter.id)
        }
        EventKind::MemberJoined { scene, .. } => format!("joined ({scene:?})"),
        EventKind::MemberLeft => "left".to_owned(),
        EventKind::MemberRemoved { by, banned } => format!(
            "{}{}",
            if *banned { "banned" } else { "removed" },
            by.as_ref()
                .map(|m| format!(" by {}", m.id))
                .unwrap_or_default()
        ),
        EventKind::GroupChanged(change) => format!("group changed: {change:?}"),
        EventKind::ListChanged(change) => format!("ban list changed: {change:?}"),
        _ => String::new(),
    }
}

fn excerpt(text: &str) -> String {
    const MAX: usize = 60;
    let flat: String = text
        .chars()
        .map(|c| if c == '\n' { ' ' } else { c })
        .collect();
    if flat.chars().count() > MAX {
        format!("\"{}…\"", flat.chars().take(MAX).collect::<String>())
    } else {
        format!("\"{flat}\"")
    }
}

fn write_summary(out: &mut impl Write, s: &Summary) -> std::io::Result<()> {
    fn counts<K: std::fmt::Display>(map: &BTreeMap<K, u64>) -> String {
        if map.is_empty() {
            return "none".to_owned();
        }
        map.iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
    writeln!(out)?;
    writeln!(out, "Summary")?;
    writeln!(
        out,
        "  events                  {} ({})",
        s.events,
        counts(&s.events_by_type)
    )?;
    writeln!(
        out,
        "  events with violations  {}",
        s.events_with_violations
    )?;
    writeln!(out, "  violations              {}", s.violations)?;
    writeln!(
        out,
        "  by rule                 {}",
        counts(&s.violations_by_rule)
    )?;
    writeln!(
        out,
        "  by check                {}",
        counts(&s.violations_by_check)
    )?;
    writeln!(
        out,
        "  by group                {}",
        counts(&s.violations_by_group)
    )?;
    if s.actions.is_empty() {
        writeln!(out, "  actions                 none")?;
    }
    for (mode, actions) in &s.actions {
        writeln!(out, "  actions ({mode:7})       {}", counts(actions))?;
    }
    if s.malformed_lines > 0 {
        writeln!(out, "  malformed lines skipped {}", s.malformed_lines)?;
    }
    Ok(())
}
