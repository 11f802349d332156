//! The wording of each message: a plain-text template (whose first line is
//! `Subject: ...`) and an HTML template per kind, compiled in and replaceable
//! file by file from a directory (`<kind>.txt`, `<kind>.html`).
//!
//! Placeholders are `{{service}}`, `{{email}}`, `{{new_email}}` and
//! `{{link}}`; in HTML their values are escaped. Four fixed placeholders and
//! no logic do not justify a template engine, so substitution is written
//! here; a template naming an unknown placeholder is refused at start.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, bail};
use portcullis_domain::mail::MailKind;

/// The compiled-in templates: (kind, text, html).
const DEFAULTS: [(MailKind, &str, &str); 12] = [
    (
        MailKind::VerifyEmail,
        include_str!("templates/verify_email.txt"),
        include_str!("templates/verify_email.html"),
    ),
    (
        MailKind::ResetPassword,
        include_str!("templates/reset_password.txt"),
        include_str!("templates/reset_password.html"),
    ),
    (
        MailKind::ConfirmEmailChange,
        include_str!("templates/confirm_email_change.txt"),
        include_str!("templates/confirm_email_change.html"),
    ),
    (
        MailKind::PasswordChanged,
        include_str!("templates/password_changed.txt"),
        include_str!("templates/password_changed.html"),
    ),
    (
        MailKind::PasswordReset,
        include_str!("templates/password_reset.txt"),
        include_str!("templates/password_reset.html"),
    ),
    (
        MailKind::EmailChangeRequested,
        include_str!("templates/email_change_requested.txt"),
        include_str!("templates/email_change_requested.html"),
    ),
    (
        MailKind::EmailChanged,
        include_str!("templates/email_changed.txt"),
        include_str!("templates/email_changed.html"),
    ),
    (
        MailKind::AccountDeleted,
        include_str!("templates/account_deleted.txt"),
        include_str!("templates/account_deleted.html"),
    ),
    (
        MailKind::SecondFactorEnabled,
        include_str!("templates/second_factor_enabled.txt"),
        include_str!("templates/second_factor_enabled.html"),
    ),
    (
        MailKind::SecondFactorDisabled,
        include_str!("templates/second_factor_disabled.txt"),
        include_str!("templates/second_factor_disabled.html"),
    ),
    (
        MailKind::RecoveryCodesRegenerated,
        include_str!("templates/recovery_codes_regenerated.txt"),
        include_str!("templates/recovery_codes_regenerated.html"),
    ),
    (
        MailKind::RecoveryCodeUsed,
        include_str!("templates/recovery_code_used.txt"),
        include_str!("templates/recovery_code_used.html"),
    ),
];

const PLACEHOLDERS: [&str; 4] = ["service", "email", "new_email", "link"];

/// The values of one message's placeholders.
#[derive(Debug, Default)]
pub struct Values<'a> {
    pub service: &'a str,
    pub email: &'a str,
    pub new_email: &'a str,
    pub link: &'a str,
}

impl Values<'_> {
    fn get(&self, name: &str) -> &str {
        match name {
            "service" => self.service,
            "email" => self.email,
            "new_email" => self.new_email,
            "link" => self.link,
            _ => "",
        }
    }
}

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

#[derive(Debug, Clone)]
struct Template {
    subject: String,
    text: String,
    html: String,
}

/// Every kind's template.
#[derive(Debug, Clone)]
pub struct Templates(HashMap<MailKind, Template>);

impl Templates {
    /// The compiled-in templates, with the files of `dir` (if any) in
    /// place of the defaults they name.
    ///
    /// # Errors
    /// A file that cannot be read, a text template without its `Subject:`
    /// line, or an unknown placeholder.
    pub fn load(dir: Option<&Path>) -> anyhow::Result<Self> {
        let mut templates = HashMap::new();
        for (kind, text, html) in DEFAULTS {
            let text = override_of(dir, kind, "txt")?.unwrap_or_else(|| text.to_owned());
            let html = override_of(dir, kind, "html")?.unwrap_or_else(|| html.to_owned());
            let (subject, body) = split_subject(&text)
                .with_context(|| format!("mail template {}.txt", kind.as_str()))?;
            for (name, source) in [("txt", &text), ("html", &html)] {
                check_placeholders(source)
                    .with_context(|| format!("mail template {}.{name}", kind.as_str()))?;
            }
            templates.insert(
                kind,
                Template {
                    subject,
                    text: body,
                    html,
                },
            );
        }
        Ok(Self(templates))
    }

    /// Renders `kind` with `values`.
    pub fn render(&self, kind: MailKind, values: &Values<'_>) -> Rendered {
        let Some(template) = self.0.get(&kind) else {
            // `load` fills every kind; keep going with a bare message.
            return Rendered {
                subject: kind.as_str().to_owned(),
                text: values.link.to_owned(),
                html: String::new(),
            };
        };
        Rendered {
            subject: fill(&template.subject, values, |v| v.replace(['\r', '\n'], " ")),
            text: fill(&template.text, values, str::to_owned),
            html: format!(
                "<!doctype html>\n<html><body>\n{}</body></html>\n",
                fill(&template.html, values, escape_html)
            ),
        }
    }
}

fn override_of(dir: Option<&Path>, kind: MailKind, ext: &str) -> anyhow::Result<Option<String>> {
    let Some(dir) = dir else {
        return Ok(None);
    };
    let path = dir.join(format!("{}.{ext}", kind.as_str()));
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
    }
}

/// `Subject: ...` on the first line, then the body after one blank line.
fn split_subject(text: &str) -> anyhow::Result<(String, String)> {
    let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
    let Some(subject) = first.strip_prefix("Subject:") else {
        bail!("the first line must be `Subject: ...`");
    };
    let body = rest.strip_prefix('\n').unwrap_or(rest);
    Ok((subject.trim().to_owned(), body.to_owned()))
}

fn check_placeholders(source: &str) -> anyhow::Result<()> {
    let mut rest = source;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            bail!("an unclosed `{{{{`");
        };
        let name = after[..end].trim();
        if !PLACEHOLDERS.contains(&name) {
            bail!("unknown placeholder `{{{{{name}}}}}` (known: service, email, new_email, link)");
        }
        rest = &after[end + 2..];
    }
    Ok(())
}

/// Replaces each placeholder with its value passed through `encode`.
fn fill(source: &str, values: &Values<'_>, encode: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(source.len() + 64);
    let mut rest = source;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                out.push_str(&encode(values.get(after[..end].trim())));
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

fn escape_html(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_renders_its_link_and_subject() {
        let templates = Templates::load(None).unwrap();
        for kind in MailKind::ALL {
            let rendered = templates.render(
                kind,
                &Values {
                    service: "Portcullis",
                    email: "ann@example.com",
                    new_email: "new@example.com",
                    link: "https://auth.example.com/account/x#token=abc",
                },
            );
            assert!(!rendered.subject.is_empty(), "{kind:?}");
            assert!(!rendered.text.contains("{{"), "{kind:?}");
            assert!(!rendered.html.contains("{{"), "{kind:?}");
            let has_link = matches!(
                kind,
                MailKind::VerifyEmail | MailKind::ResetPassword | MailKind::ConfirmEmailChange
            );
            assert_eq!(rendered.text.contains("#token=abc"), has_link, "{kind:?}");
        }
    }

    #[test]
    fn values_are_escaped_in_html_only() {
        let templates = Templates::load(None).unwrap();
        let rendered = templates.render(
            MailKind::AccountDeleted,
            &Values {
                service: "P",
                email: "<b>@example.com",
                ..Values::default()
            },
        );
        assert!(rendered.html.contains("&lt;b&gt;@example.com"));
        assert!(rendered.text.contains("<b>@example.com"));
    }

    #[test]
    fn a_file_replaces_its_default_and_unknown_placeholders_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("reset_password.txt"),
            "Subject: Reset at {{service}}\n\nGo to {{link}}\n",
        )
        .unwrap();
        let templates = Templates::load(Some(dir.path())).unwrap();
        let rendered = templates.render(
            MailKind::ResetPassword,
            &Values {
                service: "Acme",
                link: "L",
                ..Values::default()
            },
        );
        assert_eq!(rendered.subject, "Reset at Acme");
        assert_eq!(rendered.text, "Go to L\n");

        std::fs::write(dir.path().join("verify_email.html"), "{{password}}").unwrap();
        let refused = Templates::load(Some(dir.path())).unwrap_err();
        assert!(
            format!("{refused:#}").contains("unknown placeholder"),
            "{refused:#}"
        );
    }
}
