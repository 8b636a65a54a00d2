//! `/guard`: the slash command built from the core command table (a subcommand group per
//! first word, typed options, choices, rule ids suggested as they are typed, visible to
//! members with Manage Guild by default), and the way back from an interaction to the
//! command line the dispatcher runs.

use groupguard_core::command::{
    SlashEntry, SlashKind, SlashSubcommand, slash_commands, slash_text,
};
use serde_json::{Value, json};
use serenity::all::{CommandData, CommandDataOption, CommandDataOptionValue};

/// The command's name.
pub const NAME: &str = "guard";
/// Who sees `/guard` until a server says otherwise: Manage Guild.
pub const DEFAULT_PERMISSIONS: &str = "32";

fn subcommand(sub: &SlashSubcommand) -> Value {
    let options: Vec<Value> = sub
        .options
        .iter()
        .map(|o| {
            let mut option = json!({
                "type": match o.kind { SlashKind::String => 3, SlashKind::Integer => 4 },
                "name": o.name,
                "description": o.description.chars().take(100).collect::<String>(),
                "required": o.required,
            });
            if !o.choices.is_empty() {
                option["choices"] = o
                    .choices
                    .iter()
                    .map(|c| json!({"name": c, "value": c}))
                    .collect();
            } else if o.autocomplete {
                option["autocomplete"] = json!(true);
            }
            option
        })
        .collect();
    json!({"type": 1, "name": sub.name, "description": sub.description, "options": options})
}

/// The `/guard` command as Discord registers it.
pub fn registration() -> Value {
    let options: Vec<Value> = slash_commands()
        .iter()
        .map(|entry| match entry {
            SlashEntry::Command(sub) => subcommand(sub),
            SlashEntry::Group { name, subcommands } => json!({
                "type": 2,
                "name": name,
                "description": format!("{} commands", name.replace('-', " ")),
                "options": subcommands.iter().map(subcommand).collect::<Vec<_>>(),
            }),
        })
        .collect();
    json!({
        "name": NAME,
        "type": 1,
        "description": "groupguard: rules, lists, violations and settings",
        "default_member_permissions": DEFAULT_PERMISSIONS,
        "contexts": [0],
        "options": options,
    })
}

/// An option's value as typed.
fn text(value: &CommandDataOptionValue) -> Option<String> {
    Some(match value {
        CommandDataOptionValue::String(s) => s.clone(),
        CommandDataOptionValue::Integer(i) => i.to_string(),
        CommandDataOptionValue::Boolean(b) => if *b { "on" } else { "off" }.to_owned(),
        CommandDataOptionValue::Number(n) => n.to_string(),
        CommandDataOptionValue::User(u) => u.to_string(),
        CommandDataOptionValue::Autocomplete { value, .. } => value.clone(),
        _ => return None,
    })
}

/// Where in `/guard` an interaction points: the group, the subcommand and its options.
fn parts(data: &CommandData) -> Option<(Option<&str>, &str, &[CommandDataOption])> {
    let first = data.options.first()?;
    match &first.value {
        CommandDataOptionValue::SubCommandGroup(subs) => {
            let sub = subs.first()?;
            match &sub.value {
                CommandDataOptionValue::SubCommand(options) => {
                    Some((Some(first.name.as_str()), sub.name.as_str(), options))
                }
                _ => None,
            }
        }
        CommandDataOptionValue::SubCommand(options) => Some((None, first.name.as_str(), options)),
        _ => None,
    }
}

/// The command line an interaction stands for, or why there is none.
pub fn command_line(data: &CommandData) -> Result<String, String> {
    if data.name != NAME {
        return Err(format!("unknown command /{}", data.name));
    }
    let (group, sub, options) = parts(data).ok_or("choose a subcommand of /guard")?;
    let values: Vec<(&str, String)> = options
        .iter()
        .filter_map(|o| text(&o.value).map(|v| (o.name.as_str(), v)))
        .collect();
    let pairs: Vec<(&str, &str)> = values.iter().map(|(n, v)| (*n, v.as_str())).collect();
    slash_text(group, sub, &pairs).map_err(|e| e.to_string())
}

/// The text typed so far into the option being completed.
pub fn focused(data: &CommandData) -> Option<String> {
    let (_, _, options) = parts(data)?;
    options.iter().find_map(|o| match &o.value {
        CommandDataOptionValue::Autocomplete { value, .. } => Some(value.clone()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use serenity::all::Interaction;

    use super::*;

    fn interaction(options: Value) -> CommandData {
        let json = json!({
            "id": "1", "application_id": "2", "type": 2, "token": "t", "version": 1,
            "guild_id": "3", "channel_id": "4", "locale": "en-US", "entitlements": [],
            "attachment_size_limit": 8_388_608, "authorizing_integration_owners": {},
            "member": {"user": {"id": "5", "username": "m", "discriminator": "0",
                       "global_name": null, "avatar": null},
                       "roles": [], "joined_at": "2026-11-01T00:00:00.000000+00:00",
                       "deaf": false, "mute": false, "flags": 0, "permissions": "32"},
            "data": {"id": "6", "name": "guard", "type": 1}
        });
        let mut json = json;
        json["data"]["options"] = options;
        match serde_json::from_value::<Interaction>(json).unwrap() {
            Interaction::Command(c) | Interaction::Autocomplete(c) => c.data,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_registration_has_groups_choices_and_suggestions_within_discord_limits() {
        let command = registration();
        assert_eq!(command["default_member_permissions"], "32");
        let groups = command["options"].as_array().unwrap();
        assert!(groups.len() <= 25);
        let rule = groups.iter().find(|g| g["name"] == "rule").unwrap();
        let mode = rule["options"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "mode")
            .unwrap();
        assert_eq!(
            mode["options"][0]["autocomplete"], true,
            "rule ids are suggested"
        );
        assert_eq!(
            mode["options"][1]["choices"],
            json!([{"name": "enforce", "value": "enforce"}, {"name": "shadow", "value": "shadow"}])
        );
        // Discord counts names, descriptions and choices of the whole command: at most 8,000.
        fn counted(v: &Value) -> usize {
            let own = ["name", "description"]
                .iter()
                .filter_map(|k| v[k].as_str())
                .map(|s| s.chars().count())
                .sum::<usize>();
            let choices = v["choices"].as_array().map_or(0, |c| {
                c.iter()
                    .map(|c| c["name"].as_str().unwrap().len() * 2)
                    .sum()
            });
            own + choices
                + v["options"]
                    .as_array()
                    .map_or(0, |o| o.iter().map(counted).sum())
        }
        assert!(counted(&command) <= 8_000, "{}", counted(&command));
    }

    #[test]
    fn an_interaction_becomes_the_command_line_it_stands_for() {
        let data = interaction(json!([{"type": 2, "name": "rule-set", "options": [
            {"type": 1, "name": "keywords-add", "options": [
                {"type": 3, "name": "rule", "value": "ads"},
                {"type": 3, "name": "keywords", "value": "加微信 \"buy now\""}]}]}]));
        assert_eq!(
            command_line(&data).unwrap(),
            "!guard rule set ads keywords add 加微信 \"buy now\""
        );
        let data = interaction(json!([{"type": 1, "name": "stats", "options": [
            {"type": 4, "name": "days", "value": 30}]}]));
        assert_eq!(command_line(&data).unwrap(), "!guard stats 30");
        let data = interaction(json!([{"type": 2, "name": "rule", "options": [
            {"type": 1, "name": "show", "options": [
                {"type": 3, "name": "rule", "value": "a", "focused": true}]}]}]));
        assert_eq!(focused(&data).as_deref(), Some("a"));
    }
}
