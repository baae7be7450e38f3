//! A step's Markdown body, rendered to HTML once when the catalog loads.
//!
//! Shell code blocks (info string `sh`, `shell`, `bash` or none) are the step's runnable
//! commands: each gets a "Run" button that the lab page's script wires to the terminal,
//! found by `data-command-index`. Raw HTML in a step is shown as text, never passed
//! through: a lab is content, not code.

use pulldown_cmark::{CodeBlockKind, CowStr, Event, Options, Parser, Tag, TagEnd};

/// A rendered step body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub html: String,
    /// The shell code blocks' text in order, without the final newline.
    pub commands: Vec<String>,
    /// Link targets that are neither http(s), relative nor `#anchors` (e.g. `javascript:`).
    pub bad_links: Vec<String>,
}

fn is_shell(info: &str) -> bool {
    matches!(
        info.split_whitespace().next().unwrap_or(""),
        "" | "sh" | "shell" | "bash"
    )
}

fn safe_link(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    match lower.split_once(':') {
        // A colon after a '/', '?' or '#' is part of a path or query, not a scheme.
        Some((scheme, _)) if !scheme.contains(['/', '?', '#']) => {
            matches!(scheme, "http" | "https" | "mailto")
        }
        _ => true,
    }
}

/// Escapes text for an HTML element body or a double-quoted attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Renders Markdown to HTML and extracts its shell commands.
pub fn render(markdown: &str) -> Rendered {
    let mut commands = Vec::new();
    let mut bad_links = Vec::new();
    // Some(text) while inside a shell code block.
    let mut block: Option<String> = None;
    let mut events = Vec::new();
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
    for event in Parser::new_ext(markdown, options) {
        match event {
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(ref info))) if is_shell(info) => {
                block = Some(String::new());
            }
            Event::Text(ref text) if block.is_some() => {
                block.get_or_insert_with(String::new).push_str(text);
            }
            Event::End(TagEnd::CodeBlock) if block.is_some() => {
                let text = block.take().unwrap_or_default();
                let command = text.strip_suffix('\n').unwrap_or(&text).to_string();
                let html = format!(
                    "<div class=\"code-block\"><pre><code class=\"language-sh\">{}</code></pre>\
                     <button class=\"run-code\" type=\"button\" data-command-index=\"{}\" \
                     title=\"Type this command into the terminal\">Run</button></div>\n",
                    escape(&command),
                    commands.len()
                );
                commands.push(command);
                events.push(Event::Html(CowStr::from(html)));
            }
            // Raw HTML becomes visible text.
            Event::Html(text) | Event::InlineHtml(text) => events.push(Event::Text(text)),
            Event::Start(Tag::Link { ref dest_url, .. })
            | Event::Start(Tag::Image { ref dest_url, .. }) => {
                if !safe_link(dest_url) {
                    bad_links.push(dest_url.to_string());
                }
                events.push(event);
            }
            event => events.push(event),
        }
    }
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, events.into_iter());
    Rendered {
        html,
        commands,
        bad_links,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_blocks_become_commands_with_run_buttons() {
        let md = "Start it:\n\n```sh\ngantry run -d --name web busybox sleep 3600\n```\n\n\
                  ```\ngantry ps\n```\n\n```toml\nnot = \"a command\"\n```\n";
        let r = render(md);
        assert_eq!(
            r.commands,
            ["gantry run -d --name web busybox sleep 3600", "gantry ps"]
        );
        assert!(r.html.contains("data-command-index=\"0\""), "{}", r.html);
        assert!(r.html.contains("data-command-index=\"1\""), "{}", r.html);
        assert!(!r.html.contains("data-command-index=\"2\""), "{}", r.html);
        assert!(
            r.html
                .contains("<code class=\"language-toml\">not = \"a command\""),
            "{}",
            r.html
        );
    }

    #[test]
    fn raw_html_and_code_are_escaped() {
        let r =
            render("<script>alert(1)</script>\n\nhi <b>x</b>\n\n```sh\necho '<b>' && true\n```\n");
        assert!(!r.html.contains("<script>"), "{}", r.html);
        assert!(!r.html.contains("<b>"), "{}", r.html);
        assert!(r.html.contains("&lt;script&gt;"), "{}", r.html);
        assert!(
            r.html.contains("echo &#39;&lt;b&gt;&#39; &amp;&amp; true"),
            "{}",
            r.html
        );
        assert_eq!(r.commands, ["echo '<b>' && true"]);
    }

    #[test]
    fn script_links_are_reported() {
        let r = render("[a](https://kernel.org) [b](#top) [c](/labs) [d](JavaScript:alert(1))");
        assert_eq!(r.bad_links, ["JavaScript:alert(1)"]);
    }
}
