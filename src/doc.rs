//! A report as a list of blocks, written once and rendered twice: Markdown (figures linked
//! from `figures/`) and a self-contained HTML page (figures inline as SVG, no scripts, no
//! links to anything outside the file).

use std::fmt::Write as _;

/// One figure, in both forms.
pub struct Figure {
    /// File stem under `figures/`, e.g. `loss`.
    pub name: String,
    /// What the figure shows, one or two sentences.
    pub caption: String,
    pub svg: String,
    pub png: Vec<u8>,
}

pub enum Block {
    Heading(u8, String),
    Paragraph(String),
    List(Vec<String>),
    Table {
        header: Vec<String>,
        rows: Vec<Vec<String>>,
    },
    /// Index into the report's figures.
    Figure(usize),
    Code(String),
}

#[derive(Default)]
pub struct Doc {
    pub title: String,
    pub blocks: Vec<Block>,
    pub figures: Vec<Figure>,
}

impl Doc {
    pub fn new(title: impl Into<String>) -> Self {
        Doc {
            title: title.into(),
            ..Doc::default()
        }
    }

    pub fn heading(&mut self, level: u8, text: impl Into<String>) {
        self.blocks.push(Block::Heading(level, text.into()));
    }

    pub fn paragraph(&mut self, text: impl Into<String>) {
        self.blocks.push(Block::Paragraph(text.into()));
    }

    pub fn list(&mut self, items: Vec<String>) {
        if !items.is_empty() {
            self.blocks.push(Block::List(items));
        }
    }

    pub fn table(&mut self, header: &[&str], rows: Vec<Vec<String>>) {
        self.blocks.push(Block::Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows,
        });
    }

    pub fn code(&mut self, text: impl Into<String>) {
        self.blocks.push(Block::Code(text.into()));
    }

    pub fn figure(&mut self, figure: Figure) {
        self.figures.push(figure);
        self.blocks.push(Block::Figure(self.figures.len() - 1));
    }

    /// Markdown; figures are `figures/NAME.svg`.
    pub fn markdown(&self) -> String {
        let mut out = format!("# {}\n", self.title);
        for block in &self.blocks {
            out.push('\n');
            match block {
                Block::Heading(level, text) => {
                    let _ = writeln!(out, "{} {text}", "#".repeat(*level as usize));
                }
                Block::Paragraph(text) => {
                    let _ = writeln!(out, "{text}");
                }
                Block::List(items) => {
                    for item in items {
                        let _ = writeln!(out, "- {item}");
                    }
                }
                Block::Table { header, rows } => {
                    let cell = |s: &str| s.replace('|', "\\|");
                    let line = |cells: &[String]| {
                        let cells: Vec<String> = cells.iter().map(|c| cell(c)).collect();
                        format!("| {} |\n", cells.join(" | "))
                    };
                    out += &line(header);
                    out += &format!("|{}\n", "---|".repeat(header.len()));
                    for row in rows {
                        out += &line(row);
                    }
                }
                Block::Figure(i) => {
                    let f = &self.figures[*i];
                    let _ = writeln!(out, "![{}](figures/{}.svg)\n", f.caption, f.name);
                    let _ = writeln!(out, "*{}*", f.caption);
                }
                Block::Code(text) => {
                    let _ = writeln!(out, "```\n{}\n```", text.trim_end());
                }
            }
        }
        out
    }

    /// A complete HTML page that needs nothing else: styles inline, figures as inline SVG.
    pub fn html(&self) -> String {
        let mut out = String::new();
        let _ = write!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n\
             <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n<h1>{}</h1>\n",
            escape(&self.title.replace('`', "")),
            inline(&self.title)
        );
        for block in &self.blocks {
            match block {
                Block::Heading(level, text) => {
                    let level = (*level).clamp(2, 6);
                    let id = slug(text);
                    let _ = writeln!(out, "<h{level} id=\"{id}\">{}</h{level}>", escape(text));
                }
                Block::Paragraph(text) => {
                    let _ = writeln!(out, "<p>{}</p>", inline(text));
                }
                Block::List(items) => {
                    out += "<ul>\n";
                    for item in items {
                        let _ = writeln!(out, "<li>{}</li>", inline(item));
                    }
                    out += "</ul>\n";
                }
                Block::Table { header, rows } => {
                    out += "<div class=\"table\"><table>\n<thead><tr>";
                    for h in header {
                        let _ = write!(out, "<th>{}</th>", inline(h));
                    }
                    out += "</tr></thead>\n<tbody>\n";
                    for row in rows {
                        out += "<tr>";
                        for c in row {
                            let _ = write!(out, "<td>{}</td>", inline(c));
                        }
                        out += "</tr>\n";
                    }
                    out += "</tbody>\n</table></div>\n";
                }
                Block::Figure(i) => {
                    let f = &self.figures[*i];
                    let _ = writeln!(
                        out,
                        "<figure id=\"figure-{}\">\n{}\n<figcaption>{}</figcaption>\n</figure>",
                        f.name,
                        svg_body(&f.svg),
                        inline(&f.caption)
                    );
                }
                Block::Code(text) => {
                    let _ = writeln!(out, "<pre><code>{}</code></pre>", escape(text.trim_end()));
                }
            }
        }
        out += "</main>\n</body>\n</html>\n";
        out
    }
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;\
line-height:1.5;color:#1f2328;background:#fff;margin:0}\
main{max-width:1100px;margin:0 auto;padding:1.5rem}\
h1{font-size:1.8rem}h2{margin-top:2.2rem;border-bottom:1px solid #d0d7de}\
table{border-collapse:collapse;font-size:.9rem;font-variant-numeric:tabular-nums}\
th,td{border:1px solid #d0d7de;padding:.25rem .6rem;text-align:left}\
th{background:#f6f8fa}.table{overflow-x:auto}\
figure{margin:1.2rem 0}figure svg{max-width:100%;height:auto;display:block}\
figcaption{font-size:.9rem;color:#57606a}\
pre{background:#f6f8fa;padding:.8rem;overflow-x:auto;font-size:.85rem}\
code{font-family:ui-monospace,monospace}";

/// An SVG document as an element to inline in HTML: without its XML declaration, scaled by
/// its `viewBox`.
fn svg_body(svg: &str) -> String {
    let start = svg.find("<svg").unwrap_or(0);
    svg[start..].trim().to_string()
}

/// Escapes text for HTML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out += "&amp;",
            '<' => out += "&lt;",
            '>' => out += "&gt;",
            '"' => out += "&quot;",
            _ => out.push(ch),
        }
    }
    out
}

/// Escaped text with Markdown's `**bold**` and `` `code` `` spans turned into HTML.
fn inline(text: &str) -> String {
    let escaped = escape(text);
    let mut out = String::with_capacity(escaped.len());
    let (mut bold, mut code) = (false, false);
    let mut rest = escaped.as_str();
    while let Some(ch) = rest.chars().next() {
        if rest.starts_with("**") && !code {
            out += if bold { "</strong>" } else { "<strong>" };
            bold = !bold;
            rest = &rest[2..];
        } else if ch == '`' {
            out += if code { "</code>" } else { "<code>" };
            code = !code;
            rest = &rest[1..];
        } else {
            out.push(ch);
            rest = &rest[ch.len_utf8()..];
        }
    }
    if code {
        out += "</code>";
    }
    if bold {
        out += "</strong>";
    }
    out
}

fn slug(text: &str) -> String {
    let mut s: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    while s.contains("--") {
        s = s.replace("--", "-");
    }
    s.trim_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_spans_are_balanced_and_escaped() {
        assert_eq!(
            inline("**a** < `b`"),
            "<strong>a</strong> &lt; <code>b</code>"
        );
        assert_eq!(inline("`open"), "<code>open</code>");
        assert_eq!(
            slug("The original study's claims"),
            "the-original-study-s-claims"
        );
    }

    #[test]
    fn markdown_and_html_hold_the_same_blocks() {
        let mut doc = Doc::new("T");
        doc.heading(2, "Section");
        doc.paragraph("text with | pipe");
        doc.table(&["a", "b"], vec![vec!["1".into(), "x|y".into()]]);
        let md = doc.markdown();
        assert!(md.contains("## Section") && md.contains("| 1 | x\\|y |"));
        let html = doc.html();
        assert!(html.contains("<h2 id=\"section\">Section</h2>"));
        assert!(html.contains("<td>x|y</td>"));
    }
}
