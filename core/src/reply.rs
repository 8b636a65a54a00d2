//! A command's answer as structure, not text: a title, paragraphs, tables, code and files,
//! and whether only the asker should see it. Each adapter renders it natively (Discord
//! markdown and ephemeral interaction responses, Matrix HTML with a plain `body`, WeCom
//! markdown); [`Reply::plain_text`] is the rendering for `simulate`, logs and platforms
//! without formatting.

use serde::{Deserialize, Serialize};

/// A command's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// A heading, when the answer has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The body, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocks: Vec<Block>,
    /// Only the asker should see it, where the platform can do that (Discord).
    #[serde(default)]
    pub ephemeral: bool,
}

/// One part of a reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    /// A line or paragraph of prose.
    Text {
        /// The text.
        text: String,
    },
    /// Rows of cells under column headings. The plain rendering writes each row as its
    /// `plain` line, so a table reads as well in a chat without tables.
    Table {
        /// The column headings.
        columns: Vec<String>,
        /// The rows.
        rows: Vec<Row>,
    },
    /// Text to show verbatim (a rule as TOML, help).
    Code {
        /// The text.
        text: String,
    },
    /// A file to hand over (an export), attached where the platform can.
    File {
        /// Suggested name.
        name: String,
        /// Contents.
        content: String,
    },
}

/// One row of a [`Block::Table`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    /// The cells, one per column.
    pub cells: Vec<String>,
    /// The row as one line of plain text.
    pub plain: String,
}

impl Reply {
    /// An answer of one line.
    pub fn text(text: impl Into<String>) -> Reply {
        Reply::default().with(Block::Text { text: text.into() })
    }

    /// This reply with one more block.
    pub fn with(mut self, block: Block) -> Reply {
        self.blocks.push(block);
        self
    }

    /// This reply with a title.
    pub fn titled(mut self, title: impl Into<String>) -> Reply {
        self.title = Some(title.into());
        self
    }

    /// This reply shown only to the asker.
    pub fn private(mut self) -> Reply {
        self.ephemeral = true;
        self
    }

    /// The reply as plain text: the title, then each block, one line per row.
    pub fn plain_text(&self) -> String {
        let mut lines: Vec<&str> = Vec::new();
        if let Some(title) = &self.title {
            lines.push(title);
        }
        for block in &self.blocks {
            match block {
                Block::Text { text } | Block::Code { text } => lines.push(text),
                Block::Table { rows, .. } => lines.extend(rows.iter().map(|r| r.plain.as_str())),
                Block::File { name, content } => {
                    lines.push(name);
                    lines.push(content);
                }
            }
        }
        lines.join("\n").trim_end().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_has_the_title_then_every_block() {
        let reply = Reply::text("2 rules")
            .titled("Rules")
            .with(Block::Table {
                columns: vec!["rule".to_owned(), "state".to_owned()],
                rows: vec![Row {
                    cells: vec!["ads".to_owned(), "enforce".to_owned()],
                    plain: "ads [enforce]".to_owned(),
                }],
            })
            .with(Block::File {
                name: "v.csv".to_owned(),
                content: "a,b\n".to_owned(),
            })
            .private();
        assert_eq!(
            reply.plain_text(),
            "Rules\n2 rules\nads [enforce]\nv.csv\na,b"
        );
        assert!(reply.ephemeral);
    }
}
